"""scheduler.fanout: provider calls made by the dispatcher, fanned out as soon as one waits."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from scheduler.fanout import FanOut


@pytest.fixture
def fan() -> Iterator[FanOut]:
    f = FanOut(4, "test")
    yield f
    f.close()


def test_results_come_back_in_the_order_of_the_items(fan: FanOut) -> None:
    assert fan.map(lambda x: x * x, list(range(50))) == [x * x for x in range(50)]
    assert fan.map(lambda x: x, []) == []
    assert fan.map(lambda x: x, [7]) == [7]


def test_calls_that_return_at_once_are_all_made_by_the_caller() -> None:
    # (a long look, so that a pause of this busy machine never passes for a waiting call)
    fan = FanOut(4, "test", patience=1.0)
    threads: set[str] = set()

    def call(x: int) -> int:
        threads.add(threading.current_thread().name)
        return x

    for _ in range(20):
        fan.map(call, list(range(64)))
    fan.close()
    assert threads == {threading.current_thread().name}


def test_calls_that_wait_are_made_together_up_to_the_number_of_workers(fan: FanOut) -> None:
    # Four calls that can only return once all four are in progress at the same time.
    barrier = threading.Barrier(4, timeout=10)
    assert fan.map(lambda x: (barrier.wait(), x)[1], [1, 2, 3, 4]) == [1, 2, 3, 4]


def test_never_more_calls_at_once_than_workers(fan: FanOut) -> None:
    lock = threading.Lock()
    now = peak = 0

    def call(x: int) -> int:
        nonlocal now, peak
        with lock:
            now += 1
            peak = max(peak, now)
        time.sleep(0.01)  # a provider's round trip
        with lock:
            now -= 1
        return x

    assert fan.map(call, list(range(30))) == list(range(30))
    assert peak == 4


def test_a_call_that_raises_does_not_stop_the_others_and_is_raised_at_the_end(fan: FanOut) -> None:
    done: list[int] = []

    def call(x: int) -> int:
        if x == 3:
            raise ValueError("provider bug")
        done.append(x)
        return x

    with pytest.raises(ValueError, match="provider bug"):
        fan.map(call, list(range(10)))
    assert sorted(done) == [0, 1, 2, 4, 5, 6, 7, 8, 9]


def test_callers_in_two_threads_each_get_their_own_results(fan: FanOut) -> None:
    out: dict[str, list[int]] = {}

    def caller(name: str, base: int) -> None:
        out[name] = fan.map(lambda x: (time.sleep(0.003), base + x)[1], list(range(8)))

    threads = [threading.Thread(target=caller, args=(n, b)) for n, b in (("a", 0), ("b", 100))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == {"a": list(range(8)), "b": list(range(100, 108))}


def test_close_stops_every_thread_it_started() -> None:
    f = FanOut(3, "closing")
    barrier = threading.Barrier(3, timeout=10)
    f.map(lambda x: barrier.wait(), [1, 2, 3])  # helpers started
    names = {t.name for t in threading.enumerate() if t.name.startswith("closing")}
    assert names
    f.close()
    assert not {t.name for t in threading.enumerate() if t.name.startswith("closing")}
    with pytest.raises(RuntimeError):
        f.map(lambda x: x, [1])
