"""The figures of settled months are kept (month_rollup) for the trend of later reports: the
same numbers as a fresh computation, never for a month still open, cleared by rebuild-facts."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from commtest.cli import cli
from commtest.clock import UTC
from commtest.models import MonthRollup
from reports.monthly_figures import compute_monthly_figures
from tests.reports.builder import LogBuilder

MR = MonthRollup.__table__  # type: ignore[attr-defined]
JAN, FEB, MAR = (datetime(2026, m, 10, 9, 0, tzinfo=UTC) for m in (1, 2, 3))
APRIL_1 = datetime(2026, 4, 1, 6, 0, tzinfo=UTC)


@pytest.fixture
def log(engine):  # type: ignore[no-untyped-def]
    return LogBuilder(engine).directory()


def rollups(log: LogBuilder) -> set[tuple[str, str]]:
    with log.engine.connect() as c:
        return {(r.month, r.channel) for r in c.execute(sa.select(MR.c.month, MR.c.channel))}


def month_with_answers(log: LogBuilder, at: datetime, seconds: list[int]) -> int:
    run = log.run(at)
    for i, s in enumerate(seconds):
        desk = log.contact("BE-NCCN", f"{at:%m%d}-{i}", [("email", f"d{at:%m%d}{i}@nccn.example")])
        log.ping(run, "BE-NCCN", "email", sent_at=at, response_s=s, contact=desk)
    log.ping(run, "NL-NCC", "voice", sent_at=at, outcome="voicemail")
    return log.close(run)


def test_settled_months_are_kept_and_give_the_same_trend_as_a_fresh_computation(log: LogBuilder) -> None:
    month_with_answers(log, JAN, [10, 20, 30])
    month_with_answers(log, FEB, [5, 50])
    month_with_answers(log, MAR, [40])
    first = compute_monthly_figures(log.engine, "2026-03", now=APRIL_1)
    kept = rollups(log)
    # January to March are over and every run in them closed: kept, per channel and for all channels.
    assert {("2026-01", ""), ("2026-01", "email"), ("2026-01", "voice"), ("2026-02", ""), ("2026-03", "")} <= kept
    again = compute_monthly_figures(log.engine, "2026-03", now=APRIL_1)
    fresh = compute_monthly_figures(log.engine, "2026-03")  # what `report verify` computes
    assert first == again == fresh
    jan = next(p for p in again.trend if p.month == "2026-01")
    assert (jan.checks, jan.answered, jan.median_ms, jan.runs) == (4, 3, 19_000, 1)


def test_a_month_still_running_or_not_over_is_never_kept(log: LogBuilder) -> None:
    month_with_answers(log, FEB, [5])
    log.run(MAR + timedelta(days=5), status="running")  # a March run still open
    compute_monthly_figures(log.engine, "2026-03", now=APRIL_1)
    assert ("2026-02", "") in rollups(log)
    assert not {m for m in rollups(log) if m[0] == "2026-03"}
    compute_monthly_figures(log.engine, "2026-04", now=APRIL_1 + timedelta(days=3))  # April is not over
    assert not {m for m in rollups(log) if m[0] == "2026-04"}


def test_rebuilding_the_facts_clears_the_kept_months(log: LogBuilder, monkeypatch: pytest.MonkeyPatch) -> None:
    month_with_answers(log, JAN, [10])
    compute_monthly_figures(log.engine, "2026-02", now=APRIL_1)
    assert rollups(log)
    monkeypatch.setenv("COMMTEST_DATABASE_URL", log.engine.url.render_as_string(hide_password=False))
    result = CliRunner().invoke(cli, ["db", "rebuild-facts"])
    assert result.exit_code == 0, result.output
    assert "month figures cleared" in result.output
    assert rollups(log) == set()


def test_a_kept_month_whose_checks_changed_is_computed_again(log: LogBuilder) -> None:
    month_with_answers(log, FEB, [5, 50])
    month_with_answers(log, MAR, [40])
    compute_monthly_figures(log.engine, "2026-03", now=APRIL_1)
    assert ("2026-02", "") in rollups(log)
    # A February run recorded after February was kept (a restore, say): its checks count.
    month_with_answers(log, FEB + timedelta(days=3), [7])
    again = compute_monthly_figures(log.engine, "2026-03", now=APRIL_1)
    assert again == compute_monthly_figures(log.engine, "2026-03")
    feb = next(p for p in again.trend if p.month == "2026-02")
    assert (feb.checks, feb.runs) == (5, 2)
    with log.engine.connect() as c:
        kept = c.execute(sa.select(MR.c.checks).where(MR.c.month == "2026-02", MR.c.channel == "")).scalar_one()
    assert kept == 5  # kept again, as it is now
