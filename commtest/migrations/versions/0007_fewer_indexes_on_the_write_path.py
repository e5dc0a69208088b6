"""Drop four indexes that no query needs and that every attempt paid for when written.

An attempt's row is written three times (planned, dispatching, sent) and two events each time
it is sent; every index costs each of those writes. These four duplicated the start of another
index: ping(run_id) is the start of ix_ping_run_state and uq_ping_once; ping(organisation_code)
is only read together with the run; event(kind) is the start of ix_event_kind_ping; and every
read of events by ping names their kind (ix_event_kind_ping). Measured on PostgreSQL with
``bench/bench_dispatch.py``: about a tenth of the database's work per attempt.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 19:00:00
"""
from __future__ import annotations

from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ping', schema=None) as batch_op:
        batch_op.drop_index('ix_ping_run_id')
        batch_op.drop_index('ix_ping_organisation_code')
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index('ix_event_kind')
        batch_op.drop_index('ix_event_ping_id')


def downgrade() -> None:
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.create_index('ix_event_ping_id', ['ping_id'], unique=False)
        batch_op.create_index('ix_event_kind', ['kind'], unique=False)
    with op.batch_alter_table('ping', schema=None) as batch_op:
        batch_op.create_index('ix_ping_organisation_code', ['organisation_code'], unique=False)
        batch_op.create_index('ix_ping_run_id', ['run_id'], unique=False)
