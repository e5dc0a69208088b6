"""Rooms of runs that ended are closed: the hook between the run engine and the video channel.

A video channel keeps the rooms it opened (``open_room_runs``); this asks the database
which of those runs have closed (completed, aborted) and tells the channel to end their
rooms (``close_rooms``). The engine calls it at the end of every tick; it reads nothing
when no room is open. A channel never reads the database itself (CONVENTIONS.md rule 4).
"""
from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from channels.registry import ChannelSet
from commtest.db import read_session
from commtest.models import TestRun
from scheduler.records import CLOSED_RUN

log = logging.getLogger(__name__)


@runtime_checkable
class RoomKeeper(Protocol):
    def open_room_runs(self) -> set[int]: ...

    def close_rooms(self, run_ids: set[int]) -> list[int]: ...


def close_rooms_of_ended_runs(engine: Engine, channels: ChannelSet) -> int:
    """End the rooms whose run is no longer running; returns how many were closed."""
    keepers = [c for c in channels.active() if isinstance(c, RoomKeeper)]
    wanted = {run_id for k in keepers for run_id in k.open_room_runs()}
    if not wanted:
        return 0
    with read_session(engine) as s:
        ended = set(s.exec(select(TestRun.id).where(col(TestRun.id).in_(wanted),
                                                    col(TestRun.status).in_(CLOSED_RUN))).all())
    closed = 0
    for keeper in keepers:
        mine = keeper.open_room_runs() & {r for r in ended if r is not None}
        if mine:
            try:
                closed += len(keeper.close_rooms(mine))
            except Exception:  # a bridge's trouble must not stop the tick
                log.exception("closing the video rooms of runs %s failed; tried again next tick", sorted(mine))
    return closed
