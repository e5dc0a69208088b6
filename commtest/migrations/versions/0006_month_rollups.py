"""The figures of settled months (month_rollup), so that a monthly report's 12-month trend reads
eleven rows per channel instead of a year of checks; and an index on the checks of one contact
point and channel (the failure streaks and what is still open from earlier months).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 10:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

import commtest.models  # noqa: F401

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('month_rollup',
    sa.Column('timezone', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('month', sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('runs', sa.Integer(), nullable=False),
    sa.Column('checks', sa.Integer(), nullable=False),
    sa.Column('answered', sa.Integer(), nullable=False),
    sa.Column('in_target', sa.Integer(), nullable=False),
    sa.Column('median_ms', sa.Integer(), nullable=True),
    sa.Column('p90_ms', sa.Integer(), nullable=True),
    sa.Column('closed_runs', sa.Integer(), nullable=False),
    sa.Column('last_run_id', sa.Integer(), nullable=False),
    sa.Column('computed_at', commtest.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('timezone', 'month', 'channel')
    )
    with op.batch_alter_table('check_fact', schema=None) as batch_op:
        batch_op.create_index('ix_check_fact_pair', ['contact_point_id', 'channel', 'fire_at', 'run_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('check_fact', schema=None) as batch_op:
        batch_op.drop_index('ix_check_fact_pair')
    op.drop_table('month_rollup')
