"""scheduler.dispatch.DueQueue: the due attempts, read a window at a time, each batch re-read by id."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commtest.clock import FrozenClock
from commtest.models import Ping, PingState
from commtest.db import session_scope
from commtest.settings import load_settings
from scheduler.dispatch import DueQueue, claim
from tests.scheduler.seed import seed_directory, store_playbook
from tests.scheduler.test_engine import make_engine

PT = Ping.__table__  # type: ignore[attr-defined]


@pytest.fixture
def started(engine: Engine, clock: FrozenClock) -> Iterator[tuple[Engine, list[int]]]:
    """A run started: four attempts due now (two centres x e-mail and voice)."""
    seed_directory(engine)
    store_playbook(engine)
    eng, _ = make_engine(engine, clock)
    run_id = eng.create_run("test-playbook")
    eng.start_run(run_id)
    with engine.connect() as c:
        ids = list(c.execute(sa.select(PT.c.id).where(PT.c.run_id == run_id).order_by(PT.c.due_at, PT.c.id)).scalars())
    yield engine, ids
    eng.close()


def _take(engine: Engine, queue: DueQueue, clock: FrozenClock, batch: int = 1) -> list[int]:
    """The next batch, claimed as the dispatcher claims it."""
    settings = load_settings(database_url=str(engine.url))
    with engine.connect() as c:
        prepared = queue.next_batch(c, clock.now(), batch, settings)
    assert not prepared.failed
    with session_scope(engine) as s:
        return [p.ping_id for p in claim(s, prepared, clock.now(), settings, "test")]


def test_attempts_come_in_the_order_they_are_due_until_none_is_left(started: tuple[Engine, list[int]],
                                                                    clock: FrozenClock) -> None:
    engine, ids = started
    queue = DueQueue(window=2)
    got = [_take(engine, queue, clock) for _ in range(5)]
    assert got == [[ids[0]], [ids[1]], [ids[2]], [ids[3]], []]


def test_an_attempt_cancelled_after_its_window_was_read_is_skipped(started: tuple[Engine, list[int]],
                                                                   clock: FrozenClock) -> None:
    engine, ids = started
    queue = DueQueue(window=4)
    assert _take(engine, queue, clock) == [ids[0]]
    with engine.begin() as c:  # an answer on another channel cancelled it meanwhile
        c.execute(PT.update().where(PT.c.id == ids[1]).values(state=PingState.cancelled.value))
    assert _take(engine, queue, clock, batch=2) == [ids[2]]  # the batch is one short, nothing more
    assert _take(engine, queue, clock, batch=2) == [ids[3]]
    assert _take(engine, queue, clock, batch=2) == []


def test_an_attempt_due_after_a_window_was_read_is_found_with_the_next_window(started: tuple[Engine, list[int]],
                                                                              clock: FrozenClock) -> None:
    engine, ids = started
    with engine.begin() as c:  # not due yet when the first window is read
        c.execute(PT.update().where(PT.c.id == ids[0]).values(due_at=clock.now() + timedelta(minutes=5)))
    queue = DueQueue(window=2)
    assert _take(engine, queue, clock) == [ids[1]]
    with engine.begin() as c:  # a retry planned meanwhile, due at once
        c.execute(PT.update().where(PT.c.id == ids[0]).values(due_at=clock.now() - timedelta(seconds=1)))
    # the window read before still holds one attempt; the next window finds the earlier one first
    assert _take(engine, queue, clock) == [ids[2]]
    assert _take(engine, queue, clock, batch=4) == [ids[0], ids[3]]
