"""A group of answers recorded at once (scheduler.ack_group) ends exactly as the same answers
recorded one by one: the same outcomes, the same pings, the same events, on SQLite and
PostgreSQL, with every kind of answer in one group."""
from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from commtest.clock import FrozenClock
from commtest.models import Event, Ping, TestRun
from commtest.settings import Settings, load_settings
from scheduler.ack_group import Answer, record_answers
from scheduler.acks import AckOutcome
from scheduler.records import token_hash
from tests.scheduler.test_ack_writer import sent_tokens

PT = Ping.__table__  # type: ignore[attr-defined]
ET = Event.__table__  # type: ignore[attr-defined]
RT = TestRun.__table__  # type: ignore[attr-defined]


def _set(engine: Engine, token: str, **values: Any) -> None:
    with engine.begin() as c:
        c.execute(PT.update().where(PT.c.token_hash == token_hash(token)).values(**values))


def every_kind_of_answer(engine: Engine, clock: FrozenClock) -> list[Answer]:
    """Answers of every kind, on pings sent an hour ago (so not suspicious) unless said."""
    tokens = sent_tokens(engine, clock)
    now = clock.now()
    with engine.begin() as c:
        c.execute(PT.update().where(PT.c.token_hash.is_not(None)).values(
            sent_at=now - timedelta(hours=1), dispatching_at=now - timedelta(hours=1)))
    plain, late, used, expired, scanner, twice, closed, simulated, sibling, pending = tokens[:10]
    _set(engine, late, deadline_at=now - timedelta(minutes=5))
    _set(engine, used, acked_at=now - timedelta(minutes=30), state="acked", outcome="acked_late", ack_suspicious=True)
    _set(engine, expired, token_expires_at=now - timedelta(seconds=1), state="expired", outcome="no_answer")
    _set(engine, scanner, sent_at=now - timedelta(seconds=2))  # a mail scanner opens the link at once
    _set(engine, simulated, simulated=True)
    _set(engine, pending, state="pending", sent_at=None, dispatching_at=None)
    with engine.begin() as c:
        # The next attempt of the sibling's step, not sent yet: the answer cancels it.
        row = c.execute(sa.select(PT).where(PT.c.token_hash == token_hash(sibling))).one()._asdict()
        del row["id"]
        c.execute(PT.insert().values({**row, "attempt": row["attempt"] + 1, "state": "pending",
                                      "token_hash": None, "sent_at": None, "dispatching_at": None,
                                      "deadline_at": None, "due_at": now + timedelta(minutes=5)}))
        # A ping of a run that has closed: kept as an event, nothing changes.
        closed_run = c.execute(sa.select(PT.c.run_id).where(PT.c.token_hash == token_hash(closed))).scalar_one()
        twin = c.execute(sa.select(RT).where(RT.c.id == closed_run)).one()._asdict()
        del twin["id"]
        c.execute(RT.insert().values({**twin, "dedupe_key": "closed-twin", "status": "completed",
                                      "finished_at": now - timedelta(minutes=1)}))
        other = c.execute(sa.select(sa.func.max(RT.c.id))).scalar_one()
        c.execute(PT.update().where(PT.c.token_hash == token_hash(closed)).values(run_id=other))
    answer = lambda token, by=None: Answer(token, "link", by, "test-agent", "192.0.2.10")  # noqa: E731
    return [answer(plain, " Desk officer "), answer(late), answer(used), answer(expired), answer(scanner),
            answer(twice), answer(twice, "Second"), answer(closed), answer(closed), answer(simulated),
            answer(sibling), answer(pending), answer(secrets.token_urlsafe(32)), answer("not-a-token"),
            answer(plain)]


def recorded(engine: Engine, clock: FrozenClock, settings: Settings,
             groups: list[list[Answer]]) -> tuple[list[AckOutcome], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Record ``groups`` (each in one transaction), read what they did, and roll it all back."""
    with engine.connect() as conn:
        txn = conn.begin()
        try:
            first_event = conn.execute(sa.select(sa.func.coalesce(sa.func.max(ET.c.id), 0))).scalar_one()
            session = Session(bind=conn)
            outcomes = [o for group in groups for o in record_answers(session.connection(), clock, settings, group)]
            pings = [tuple(r) for r in conn.execute(sa.select(PT).order_by(PT.c.id))]
            events = sorted(tuple(r)[2:] for r in conn.execute(  # without id and at's order
                sa.select(ET.c.id, ET.c.at, ET.c.ping_id, ET.c.kind, ET.c.actor, ET.c.outcome, ET.c.response_ms,
                          ET.c.run_id, ET.c.channel, ET.c.data).where(ET.c.id > first_event)))
        finally:
            txn.rollback()
    return outcomes, pings, events


def _shown(outcome: AckOutcome) -> AckOutcome:
    # A second answer's page data read before the first was written (group) or after (alone):
    # only the ping's acked_at in it can differ, and pages show the outcome's own.
    return outcome._replace(info=outcome.info and outcome.info._replace(acked_at=None))


def test_a_group_of_every_kind_of_answer_ends_as_the_same_answers_one_by_one(engine: Engine,
                                                                            clock: FrozenClock) -> None:
    answers = every_kind_of_answer(engine, clock)
    settings = load_settings(database_url=str(engine.url), ack_suspicious_seconds=10.0)
    together = recorded(engine, clock, settings, [answers])
    alone = recorded(engine, clock, settings, [[a] for a in answers])
    assert [_shown(o) for o in together[0]] == [_shown(o) for o in alone[0]]
    assert together[1] == alone[1]
    assert together[2] == alone[2]
    statuses = [o.status for o in together[0]]
    assert statuses == ["acked", "acked", "already", "expired", "acked", "acked", "already", "after_close",
                        "after_close", "acked", "acked", "already", "unknown", "malformed", "already"]
    by_kind = {kind: sum(1 for e in together[2] if e[1] == kind) for kind in {e[1] for e in together[2]}}
    assert by_kind["ping.acked"] == 6 and by_kind["ping.answer_after_close"] == 1
    assert by_kind["ping.settled"] == 7  # six answers and the sibling's attempt cancelled
    plain, late, scanner, twice = (together[0][i] for i in (0, 1, 4, 5))
    assert plain.info is not None and plain.info.contact_name and not plain.late and not plain.suspicious
    assert late.late and scanner.suspicious and together[0][6].acked_at == twice.acked_at == clock.now()


def test_a_video_ping_the_page_has_not_checked_comes_back_unwritten(engine: Engine, clock: FrozenClock) -> None:
    token = sent_tokens(engine, clock)[0]
    _set(engine, token, channel="video")
    settings = load_settings(database_url=str(engine.url))
    outcomes, _, events = recorded(engine, clock, settings, [[Answer(token, "link", None, None, None, checked=False)]])
    assert outcomes[0].status == "check" and outcomes[0].info is not None and events == []
    outcomes, _, events = recorded(engine, clock, settings, [[Answer(token, "link", None, None, None)]])
    assert outcomes[0].status == "acked" and events
