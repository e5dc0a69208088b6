"""Recovery reconciliation: before a ping left ``dispatching`` by a crash is marked ``unknown``,
ask its providers whether they have it.

A provider that can be asked has ``find_sent(address, since, until, ack_code)`` (Twilio: its
Calls and Messages lists, by the number and the minutes since the attempt was claimed, and,
for an SMS, the reply code in the body). When exactly one call or message matches and no
other ping already owns its SID, the ping is recorded as ``sent`` with that SID and Twilio's
creation time (``ping.sent`` with ``reconciled``), and the webhooks that follow (they carry the
ping id) apply as usual. Otherwise nothing changes here and ``RunEngine.recover`` marks it
``unknown``: a ping is never sent twice on a guess. (An SMTP server's queue cannot be asked.)

``RunEngine.recover`` calls ``reconcile_dispatching`` first.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from channels.registry import ChannelSet, is_simulated
from commtest import events as ev
from commtest.clock import Clock
from commtest.db import read_session, run_write
from commtest.errors import CommtestError
from commtest.models import Ping, PingState, TestRun
from scheduler import records
from scheduler.specs import spec_for_revision

__all__ = ["reconcile_dispatching"]

log = logging.getLogger(__name__)

# A claimed attempt's provider call starts at once; allow for pacing and a slow API.
_WINDOW = timedelta(minutes=10)


@dataclass(frozen=True)
class _Stuck:
    ping_id: int
    channel: str
    address: str
    ack_code: str | None
    since: datetime
    ack_deadline: timedelta


def _stuck(engine: Engine, now: datetime) -> list[_Stuck]:
    with read_session(engine) as s:
        rows = s.exec(select(Ping, TestRun.revision_id).join(TestRun, col(TestRun.id) == col(Ping.run_id))
                      .where(Ping.state == PingState.dispatching.value).order_by(col(Ping.id))).all()
        out = []
        for ping, revision_id in rows:
            try:
                deadline = spec_for_revision(s, revision_id).step(ping.step).ack_deadline
            except (CommtestError, KeyError, ValueError):
                continue
            out.append(_Stuck(ping.id or 0, ping.channel, ping.address, ping.ack_code,
                              ping.dispatching_at or now - _WINDOW, deadline))
        return out


def reconcile_dispatching(engine: Engine, clock: Clock, channels: ChannelSet, actor: str) -> int:
    """Record as sent every ``dispatching`` ping its provider turns out to have; returns how many."""
    now = clock.now()
    n = 0
    for item in _stuck(engine, now):
        found = _ask(channels, item, now)
        if found is None:
            continue
        provider, record, simulated = found
        if run_write(engine, partial(_record, item=item, provider=provider, record=record, simulated=simulated,
                                     actor=actor, now=now), durable=True):
            n += 1
    if n:
        log.warning("%d ping(s) found dispatching after a crash were found at their provider: recorded as sent", n)
    return n


def _ask(channels: ChannelSet, item: _Stuck, now: datetime) -> tuple[str, Any, bool] | None:
    for name in channels.providers(item.channel):
        try:
            channel = channels.get(item.channel, name)
        except CommtestError:
            continue
        lookup = getattr(channel, "find_sent", None)
        if not callable(lookup):
            continue
        try:
            record = lookup(item.address, item.since, min(now, item.since + _WINDOW), item.ack_code)
        except CommtestError as exc:  # cannot tell: the ping stays for ``recover`` to mark unknown
            log.warning("ping %s: could not ask %s whether it was sent: %s", item.ping_id, name, exc)
            continue
        if record is not None:
            return name, record, is_simulated(channel)
    return None


def _record(s: Session, item: _Stuck, provider: str, record: Any, simulated: bool, actor: str, now: datetime) -> bool:
    if s.exec(select(Ping.id).where(Ping.provider_ref == record.sid, Ping.id != item.ping_id)).first() is not None:
        return False  # that call belongs to another attempt
    ping = s.get(Ping, item.ping_id)
    if ping is None:
        return False
    sent_at = min(record.created_at, now)
    values = {"state": PingState.sent.value, "sent_at": sent_at, "provider_ref": record.sid,
              "deadline_at": sent_at + item.ack_deadline, "provider": provider[:32], "simulated": simulated}
    if not records.update_ping(s, ping, (PingState.dispatching.value,), **values):
        return False
    # At the provider's moment of creation (what the response time counts from), noted now.
    records.ping_event(s, ping, ev.PING_SENT, sent_at, actor, provider=provider, provider_ref=record.sid,
                       deadline_at=values["deadline_at"], simulated=simulated, reconciled=True,
                       provider_status=record.status, recorded_at=now)
    records.log_change(ping, "sent (found at the provider after a crash)", now)
    return True
