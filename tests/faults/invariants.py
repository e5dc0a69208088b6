"""What must hold after faults, judged from the fakes' own logs and the database alone.

* every attempt handed to a fake at most once (by ping, and by run × contact point × channel × attempt);
* none lost from the record: every attempt a fake received is ``dispatching`` or later, never ``pending``;
* nothing claimed that no fake received: a ping the database says was sent, a fake has;
* every acknowledgement answered 2xx is in the database, final (``acked``), with exactly one ``ping.acked``;
* ``unknown`` only where a provider call may have been in flight: claimed by a process that then died
  (or lost the database), at most one batch (``dispatch_workers``) per such process, and never followed
  by a retry or an escalation of its own;
* every run completed, every ping settled.
"""
from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commtest.db import read_session
from commtest.models import Event, InboundMessage, Ping, TestRun
from tests.faults.officers import Answer

PT = Ping.__table__  # type: ignore[attr-defined]
ET = Event.__table__  # type: ignore[attr-defined]
RT = TestRun.__table__  # type: ignore[attr-defined]
IT = InboundMessage.__table__  # type: ignore[attr-defined]
RECORDED = {"dispatching", "sent", "delivered", "acked", "expired", "failed", "unknown"}


@dataclass
class Received:
    """One attempt as a fake recorded it."""

    ping_id: int
    channel: str
    fake: str  # smtp | sandbox


@dataclass
class Verdict:
    figures: dict[str, float] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    def fail(self, what: str, items: Iterable[object], limit: int = 12) -> None:
        items = list(items)
        if items:
            self.violations.append(f"{what}: {len(items)} — {items[:limit]}")


def _pid(actor: str) -> int | None:
    tail = actor.rsplit(":", 1)[-1]
    return int(tail) if actor.startswith("daemon:") and tail.isdigit() else None


def judge(engine: Engine, received: list[Received], answers: list[Answer], *, died: set[int],
          dispatch_workers: int, allow_5xx: bool = False) -> Verdict:
    """``died``: pids of the processes that were killed or lost their database mid-call.
    ``allow_5xx``: the database itself went away, so a page may have failed (the officer
    tried again); otherwise a 5xx is a failure."""
    v = Verdict()
    with read_session(engine) as s:
        conn = s.connection()
        pings = {r.id: r for r in conn.execute(sa.select(
            PT.c.id, PT.c.run_id, PT.c.contact_point_id, PT.c.channel, PT.c.attempt, PT.c.state, PT.c.outcome,
            PT.c.sent_at, PT.c.acked_at, PT.c.ack_method, PT.c.escalated_from_id)).all()}
        events = conn.execute(sa.select(ET.c.id, ET.c.kind, ET.c.ping_id, ET.c.actor).where(
            ET.c.ping_id.is_not(None)).order_by(ET.c.id)).all()
        runs = conn.execute(sa.select(RT.c.id, RT.c.status)).all()
        inbound = Counter(key for (key,) in conn.execute(sa.select(IT.c.message_key)).all())
    by_kind: dict[str, dict[int, list[tuple[int, str]]]] = defaultdict(lambda: defaultdict(list))
    for ev_id, kind, ping_id, actor in events:
        by_kind[kind][ping_id].append((ev_id, actor))

    # -- at most once, by the fakes' own logs
    handed = Counter(r.ping_id for r in received)
    v.fail("attempts a fake received more than once", sorted(p for p, n in handed.items() if n > 1))
    keys = Counter((pings[p].run_id, pings[p].contact_point_id, pings[p].channel, pings[p].attempt)
                   for p in handed if p in pings)
    v.fail("(run, contact point, channel, attempt) received more than once", sorted(k for k, n in keys.items() if n > 1))
    duplicates = sum(n - 1 for n in handed.values() if n > 1) + sum(n - 1 for n in keys.values() if n > 1)

    # -- none lost from the record, none recorded that no fake has
    v.fail("attempts a fake received that the database does not know", sorted(p for p in handed if p not in pings))
    v.fail("attempts a fake received that the database still has unsent",
           sorted((p, pings[p].state) for p in handed if p in pings and pings[p].state not in RECORDED))
    v.fail("pings the database says were sent that no fake received",
           sorted(p for p, row in pings.items() if row.sent_at is not None and p not in handed))

    # -- acknowledgements
    acked_events = by_kind["ping.acked"]
    v.fail("pings with more than one ping.acked event", sorted(p for p, evs in acked_events.items() if len(evs) > 1))
    v.fail("pings acked without a ping.acked event, or the reverse",
           sorted(p for p, row in pings.items() if (row.state == "acked") != (len(acked_events.get(p, [])) == 1)))
    ok = [a for a in answers if a.got_2xx_ack]
    lost = [a.ping_id for a in ok if pings[a.ping_id].state != "acked" or len(acked_events.get(a.ping_id, [])) != 1
            or pings[a.ping_id].ack_method != "link"]
    v.fail("acknowledgements answered 2xx that the database does not hold, final, once", lost)
    already = [a for a in answers if a.final is not None and a.final.kind == "already"]
    v.fail("'already confirmed' answers for pings that are not acked",
           sorted(a.ping_id for a in already if pings[a.ping_id].state != "acked"))
    closed = [a for a in answers if a.final is not None and a.final.kind == "closed"]
    v.fail("answers after close not kept exactly once", sorted(
        a.ping_id for a in closed if len(by_kind["ping.answer_after_close"].get(a.ping_id, [])) != 1))
    replies = [a for a in answers if a.mode == "reply" and a.reply_id is not None]
    v.fail("e-mail replies not recorded exactly once", sorted(a.ping_id for a in replies if inbound[a.reply_id] != 1))
    v.fail("e-mail replies that neither acknowledged their ping nor were kept as after its run closed", sorted(
        a.ping_id for a in replies if pings[a.ping_id].state != "acked"
        and not by_kind["ping.answer_after_close"].get(a.ping_id)))
    errors = [(a.ping_id, r.replica, r.status) for a in answers for r in a.responses if r.kind == "error"]
    if not allow_5xx:
        v.fail("acknowledgement requests answered 5xx", errors)
    v.fail("acknowledgement forms refused for their CSRF field or rate",
           [(a.ping_id, r.kind) for a in answers for r in a.responses if r.kind in ("csrf", "ratelimited", "unknown")])
    on_deadline = [a for a in ok if a.mode == "deadline" and a.deadline is not None
                   and abs((a.acked_post().posted if a.acked_post() else 0) - a.deadline) <= 0.1]  # type: ignore[union-attr]
    late = [a for a in ok if pings[a.ping_id].outcome == "acked_late"]

    # -- unknown only where a call may have been in flight
    unknown = [p for p, row in pings.items() if row.state == "unknown"]
    claimed_by: dict[int, int | None] = {}
    for p in unknown:
        dispatching = by_kind["ping.dispatching"].get(p, [])
        claimed_by[p] = _pid(dispatching[-1][1]) if dispatching else None
    v.fail("unknown pings claimed by a process that neither died nor lost its database",
           sorted((p, claimed_by[p]) for p in unknown if claimed_by[p] not in died))
    v.fail("attempts planned after an unknown one (an unknown attempt is never followed up automatically)",
           sorted(p for p, row in pings.items() if row.escalated_from_id in set(unknown)))
    per_process = Counter(claimed_by[p] for p in unknown)
    v.fail(f"processes that left more than one batch ({dispatch_workers}) unknown",
           sorted((pid, n) for pid, n in per_process.items() if n > dispatch_workers))

    # -- every run completed, every ping settled
    v.fail("runs not completed", sorted((rid, status) for rid, status in runs if status != "completed"))
    settled = by_kind["ping.settled"]
    v.fail("pings without an outcome in the log", sorted(p for p in pings if p not in settled))
    v.fail("pings left open", sorted((p, r.state) for p, r in pings.items()
                                     if r.state in ("pending", "dispatching", "sent", "delivered")))

    v.figures = {
        "attempts": len(received),
        "duplicates": duplicates,
        "lost_acks": len(lost),
        "acks_2xx": len(ok),
        "acks_on_deadline": len(on_deadline),
        "acks_late": len(late),
        "acks_after_close": len(closed),
        "replies": len(replies),
        "ack_pages_5xx": len(errors),
        "unknown": len(unknown),
        "unknown_received": sum(1 for p in unknown if p in handed),
        "runs": len(runs),
    }
    return v


def failover_figures(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {}
    return {"failover_s_max": round(max(seconds), 2), "failover_s_median": round(statistics.median(seconds), 2)}
