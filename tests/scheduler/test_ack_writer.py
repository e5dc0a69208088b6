"""Group commit of acknowledgements: answers that arrive while a commit is written go into the
next one together; each is recorded once; one that fails never takes the others down."""
from __future__ import annotations

import hashlib
import secrets
import threading
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from channels.registry import ChannelSet
from commtest.clock import FrozenClock
from commtest.db import session_scope
from commtest.models import Event, Ping
from commtest.settings import load_settings
from scheduler.ack_group import Answer
from scheduler.ack_writer import AckWriter
from scheduler.acks import AckOutcome
from scheduler.engine import RunEngine
from tests.scheduler.seed import seed_bulk, store_playbook, fast_playbook

PT = Ping.__table__  # type: ignore[attr-defined]
ET = Event.__table__  # type: ignore[attr-defined]


def sent_tokens(engine: Engine, clock: FrozenClock) -> list[str]:
    orgs = seed_bulk(engine, organisations=2, per_org=10)
    store_playbook(engine, fast_playbook(orgs), playbook_id="drill")
    settings = load_settings(database_url=str(engine.url))
    runs = RunEngine(engine, settings, clock, ChannelSet(settings, clock, {}), actor="test")
    run_id = runs.create_run("drill")
    runs.start_run(run_id)
    runs.close()
    now = clock.now()
    with engine.begin() as c:
        ids = c.execute(sa.select(PT.c.id).where(PT.c.run_id == run_id, PT.c.channel == "email")).scalars().all()
        tokens = [secrets.token_urlsafe(32) for _ in ids]
        for ping_id, token in zip(ids, tokens):
            c.execute(PT.update().where(PT.c.id == ping_id).values(
                state="sent", sent_at=now, dispatching_at=now, deadline_at=now + timedelta(hours=1),
                token_hash=hashlib.sha256(token.encode()).hexdigest(), token_expires_at=now + timedelta(days=1)))
    return tokens


def acked_events(engine: Engine) -> list[int]:
    with engine.connect() as c:
        return list(c.execute(sa.select(ET.c.ping_id).where(ET.c.kind == "ping.acked")).scalars())


def test_answers_that_arrive_during_a_commit_are_recorded_together_once_each(engine: Engine, clock: FrozenClock) -> None:
    tokens = sent_tokens(engine, clock)
    assert len(tokens) >= 10
    writer = AckWriter(engine, clock, load_settings(database_url=str(engine.url)))
    held, release = threading.Event(), threading.Event()

    first = hashlib.sha256(tokens[0].encode()).hexdigest()

    def hold_the_write_lock() -> None:
        # Another writer holds the first answer's ping meanwhile (SQLite: the whole database).
        with session_scope(engine) as s:
            s.connection().execute(sa.select(PT.c.id).where(PT.c.token_hash == first).with_for_update())
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    assert held.wait(10)
    futures = [writer.submit(Answer(t, "link", None, "test", "127.0.0.1")) for t in tokens]
    release.set()
    outcomes = [f.result(30) for f in futures]
    holder.join(10)
    writer.close()
    assert [o.status for o in outcomes] == ["acked"] * len(tokens)
    assert writer.groups <= 2  # the first answer alone, then all that waited behind it in one commit
    recorded = acked_events(engine)
    assert sorted(recorded) == sorted(o.ping_id for o in outcomes)  # each once
    # A second answer on a link already used is "already", not a second event.
    again = writer.submit(Answer(tokens[0], "link", None, "test", "127.0.0.1"))
    assert again.result(30).status == "already"
    writer.close()
    assert len(acked_events(engine)) == len(tokens)


def test_an_answer_that_fails_fails_alone(engine: Engine, clock: FrozenClock) -> None:
    tokens = sent_tokens(engine, clock)
    poison = tokens[3]

    class Flaky(AckWriter):
        def _record(self, s: Session, answers: list[Answer]) -> list[AckOutcome]:
            if any(a.token == poison for a in answers):
                raise RuntimeError("a bug in one answer")
            return super()._record(s, answers)

    writer = Flaky(engine, clock, load_settings(database_url=str(engine.url)))
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with session_scope(engine):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    futures = {t: writer.submit(Answer(t, "link", None, None, None)) for t in tokens[:8]}
    release.set()
    holder.join(10)
    for token, future in futures.items():
        if token == poison:
            assert isinstance(future.exception(30), RuntimeError)
        else:
            assert future.result(30).status == "acked"
    writer.close()
    assert len(acked_events(engine)) == 7
