"""The run engine: a persisted state machine driven by ``tick()``.

Every decision reads the database and the clock, so a restarted daemon simply carries
on: deadlines resume, nothing is drawn again, and nothing is sent twice:

* A ping goes ``pending → dispatching`` in a committed, durable transaction *before*
  its provider is called. A ping found ``dispatching`` at start-up is marked ``unknown``
  for a coordinator and never resent (``recover``).
* A ping is unique on (run, contact point, channel, attempt) in the database.
* Only the scheduler leader runs ``tick``; ``leader_check`` is asked before each batch.
"""
from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from channels.base import ChannelReport, SendResult
from channels.registry import ChannelSet
from commtest import events as ev
from commtest.clock import Clock
from commtest.db import session_scope
from commtest.errors import ChannelError, CommtestError, LeadershipLost, NotFoundError
from commtest.masking import mask_address
from commtest.models import (
    EndpointStatus,
    Outcome,
    Ping,
    PingState,
    Playbook,
    RunStatus,
    TestRun,
)
from commtest.settings import Settings
from scheduler import records
from scheduler.dispatch import Claimed, claim_due
from scheduler.followup import follow_up
from scheduler.planner import initial_plan
from scheduler.specs import spec_for_revision

log = logging.getLogger(__name__)

# Pings claimed (marked dispatching) per durable transaction. Small on purpose: a crash
# leaves at most one batch ``unknown``; each batch is sent by the worker pool in parallel.
DISPATCH_BATCH_PER_WORKER = 2
# Time one tick may spend starting dispatch batches before it judges deadlines.
DISPATCH_BUDGET = timedelta(seconds=1)


@dataclass
class TickStats:
    started: int = 0
    missed: int = 0
    dispatched: int = 0
    reports: int = 0
    expired: int = 0
    completed: int = 0

    def busy(self) -> bool:
        return any((self.started, self.dispatched, self.reports, self.expired, self.completed))


def default_actor() -> str:
    return f"daemon:{socket.gethostname()}:{os.getpid()}"


class RunEngine:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        clock: Clock,
        channels: ChannelSet | None = None,
        *,
        actor: str | None = None,
        leader_check: Callable[[], bool] | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.channels = channels or ChannelSet(settings, clock)
        self.actor = actor or default_actor()
        self.leader_check = leader_check
        self._pool = ThreadPoolExecutor(max_workers=settings.dispatch_workers, thread_name_prefix="dispatch")
        # Set on a clean stop: the batch in flight finishes, no new batch starts.
        self.stopping = threading.Event()

    def close(self, *, close_channels: bool = True) -> None:
        self._pool.shutdown(wait=True)  # a clean stop finishes the provider calls in flight
        if close_channels:  # False when the caller owns the channel set and uses it again
            self.channels.close()

    # ------------------------------------------------------------------ runs
    def create_run(
        self,
        playbook_id: str,
        *,
        trigger: str = "manual",
        started_by: str = "",
        fire_at: datetime | None = None,
        schedule_id: int | None = None,
        dedupe_key: str | None = None,
        announced: bool = False,
        window: tuple[datetime, datetime] | None = None,
        note: str = "",
    ) -> int:
        now = self.clock.now()
        with session_scope(self.engine) as s:
            pb = s.get(Playbook, playbook_id)
            if pb is None or pb.current_revision_id is None:
                raise NotFoundError(f"playbook {playbook_id!r} not found; `commtest playbook list` shows the known ones")
            if dedupe_key is not None:
                existing = s.exec(select(TestRun).where(TestRun.dedupe_key == dedupe_key)).first()
                if existing is not None:
                    return existing.id or 0
            run = TestRun(
                playbook_id=playbook_id,
                revision_id=pb.current_revision_id,
                schedule_id=schedule_id,
                dedupe_key=dedupe_key or f"manual:{secrets.token_hex(8)}",
                trigger=trigger,
                announced=announced,
                status=RunStatus.planned.value,
                fire_at=fire_at or now,
                window_start=window[0] if window else None,
                window_end=window[1] if window else None,
                started_by=started_by,
                note=note,
            )
            s.add(run)
            s.flush()
            ev.record_event(s, at=now, actor=self.actor, kind=ev.RUN_PLANNED, run_id=run.id, playbook_id=playbook_id,
                            revision_id=run.revision_id, schedule_id=schedule_id, trigger=trigger,
                            fire_at=run.fire_at, announced=announced)
            return run.id or 0

    def start_run(self, run_id: int) -> int:
        """Start a planned run now: plan the first attempt of every initial step."""
        now = self.clock.now()
        with session_scope(self.engine) as s:
            run = s.get(TestRun, run_id)
            if run is None:
                raise NotFoundError(f"run {run_id} not found")
            if run.status != RunStatus.planned.value:
                return 0
            spec = spec_for_revision(s, run.revision_id)
            run.status = RunStatus.running.value
            run.started_at = now
            s.add(run)
            ev.record_event(s, at=now, actor=self.actor, kind=ev.RUN_STARTED, run_id=run.id, started_by=run.started_by)
            planned, gaps = initial_plan(s, spec)
            # Attempts counted here instead of queried per ping: the run has no pings yet.
            attempts: dict[tuple[int, str], int] = {}
            pending: list[tuple[Ping, str, str]] = []
            for p in planned:
                key = (p.target.contact_point_id, p.step.channel)
                attempts[key] = attempts.get(key, 0) + 1
                ping = Ping(
                    run_id=run.id or 0, contact_point_id=p.target.contact_point_id, endpoint_id=p.endpoint_id,
                    organisation_code=p.target.organisation_code, channel=p.step.channel,
                    provider=self.settings.channels.get(p.step.channel, ""), address=p.address,
                    language=p.target.language, step=p.step.id, attempt=attempts[key], step_attempt=1,
                    state=PingState.pending.value, due_at=now + p.step.start_after,
                )
                pending.append((ping, p.target.contact_point_code, p.target.field_code))
            s.add_all([ping for ping, _, _ in pending])
            s.flush()  # one batched INSERT for all pings
            for ping, cp_code, field_code in pending:
                ev.record_event(s, at=now, actor=self.actor, kind=ev.PING_PLANNED, run_id=run.id, ping_id=ping.id,
                                organisation_code=ping.organisation_code, channel=ping.channel,
                                contact_point_id=ping.contact_point_id, step=ping.step, attempt=ping.attempt,
                                step_attempt=1, endpoint_id=ping.endpoint_id,
                                address=mask_address(ping.address), due_at=ping.due_at,
                                contact_point=cp_code, field=field_code)
            for target, step, reason in gaps:
                ev.record_event(s, at=now, actor=self.actor, kind=ev.RUN_GAP, run_id=run.id,
                                organisation_code=target.organisation_code if target else None, channel=step.channel,
                                contact_point=target.contact_point_code if target else None,
                                field=target.field_code if target else None, step=step.id, reason=reason)
            log.info("run=%s started: %d pings planned, %d gaps", run.id, len(planned), len(gaps))
            return len(planned)

    def abort_run(self, run_id: int, *, by: str, reason: str = "") -> int:
        now = self.clock.now()
        with session_scope(self.engine) as s:
            run = s.get(TestRun, run_id)
            if run is None:
                raise NotFoundError(f"run {run_id} not found")
            if run.status in (RunStatus.completed.value, RunStatus.aborted.value, RunStatus.missed.value):
                raise CommtestError(f"run {run_id} is already {run.status}; there is nothing to abort")
            cancelled = 0
            for ping in s.exec(select(Ping).where(Ping.run_id == run_id, Ping.state == PingState.pending.value)).all():
                records.settle(s, ping, Outcome.cancelled, now, f"cli:{by}", state=PingState.cancelled, reason="run aborted")
                cancelled += 1
            run.status = RunStatus.aborted.value
            run.finished_at = now
            s.add(run)
            ev.record_event(s, at=now, actor=f"cli:{by}", kind=ev.RUN_ABORTED, run_id=run_id, by=by, reason=reason)
            return cancelled

    # ------------------------------------------------------------------ recovery
    def recover(self) -> int:
        """Mark pings left ``dispatching`` by a crash as ``unknown``: never resend them."""
        now = self.clock.now()
        with session_scope(self.engine, durable=True) as s:
            stuck = s.exec(select(Ping).where(Ping.state == PingState.dispatching.value)).all()
            for ping in stuck:
                records.ping_event(s, ping, ev.PING_UNKNOWN, now, self.actor,
                               reason="found dispatching at start-up: the provider may or may not have sent it")
                records.settle(s, ping, Outcome.unknown, now, self.actor, state=PingState.unknown,
                               reason="crash while dispatching; not resent — check with the centre")
            if stuck:
                log.warning("%d ping(s) were dispatching during a crash; marked unknown, not resent", len(stuck))
            return len(stuck)

    # ------------------------------------------------------------------ the loop
    def tick(self) -> TickStats:
        stats = TickStats()
        now = self.clock.now()
        stats.started, stats.missed = self.start_due_runs(now)
        stats.dispatched = self.dispatch_due(budget=DISPATCH_BUDGET)
        # Reports are read up to ``seen`` and deadlines judged at the same instant, so an
        # answer that arrived just before its deadline is never mistaken for silence.
        seen = self.clock.now()
        stats.reports = self.poll_channels(seen)
        stats.expired = self.expire_due(seen)
        stats.completed = self.complete_finished(self.clock.now())
        return stats

    def _ensure_leader(self) -> None:
        if self.leader_check is not None and not self.leader_check():
            raise LeadershipLost("leadership lost: dispatching stopped")

    def start_due_runs(self, now: datetime) -> tuple[int, int]:
        with session_scope(self.engine) as s:
            due = s.exec(select(TestRun.id, TestRun.fire_at).where(
                TestRun.status == RunStatus.planned.value, col(TestRun.fire_at) <= now)).all()
        started = missed = 0
        for run_id, fire_at in due:
            assert run_id is not None and fire_at is not None
            if self._withdraw_if_schedule_paused(run_id, now):
                continue
            if now - fire_at <= self.settings.misfire_grace:
                self._ensure_leader()
                self.start_run(run_id)
                started += 1
            else:
                with session_scope(self.engine) as s:
                    run = s.get(TestRun, run_id)
                    if run and run.status == RunStatus.planned.value:
                        run.status = RunStatus.missed.value
                        run.finished_at = now
                        s.add(run)
                        ev.record_event(s, at=now, actor=self.actor, kind=ev.RUN_MISSED, run_id=run_id, fire_at=fire_at,
                                        reason=f"fire time passed by more than the misfire grace ({self.settings.misfire_grace})")
                        log.warning("run=%s missed: fire time %s passed while no daemon was leading", run_id, fire_at)
                missed += 1
        return started, missed

    def _withdraw_if_schedule_paused(self, run_id: int, now: datetime) -> bool:
        """A planned run of a schedule paused (or removed from its playbook) meanwhile does not fire."""
        from commtest.models import Schedule

        with session_scope(self.engine) as s:
            run = s.get(TestRun, run_id)
            if run is None or run.schedule_id is None:
                return False
            sch = s.get(Schedule, run.schedule_id)
            if sch is None or not sch.paused:
                return False
            run.status = RunStatus.aborted.value
            run.finished_at = now
            s.add(run)
            ev.record_event(s, at=now, actor=self.actor, kind=ev.RUN_ABORTED, run_id=run_id, by=self.actor,
                            reason="its schedule was paused or removed from the playbook before it fired")
            return True

    def dispatch_due(self, limit: int = 10_000, budget: timedelta | None = None) -> int:
        """Send due pings in small batches. With ``budget``, stop starting new batches
        once it is spent, so that a big wave of pings does not hold back the deadline
        and escalation decisions of the same tick (the rest goes in the next tick)."""
        total = 0
        started = self.clock.now()
        while total < limit and not self.stopping.is_set():
            if budget is not None and total and self.clock.now() - started >= budget:
                break
            self._ensure_leader()
            claimed = self._claim(min(DISPATCH_BATCH_PER_WORKER * self.settings.dispatch_workers, limit - total))
            if not claimed:
                break
            results = list(self._pool.map(self._send_one, claimed))
            self._record_sends(claimed, results)
            total += len(claimed)
        return total

    def _claim(self, batch: int) -> list[Claimed]:
        # durable: the ``dispatching`` mark must survive a power cut, or a ping could go twice.
        with session_scope(self.engine, durable=True) as s:
            return claim_due(s, self.clock.now(), batch, self.settings, self.actor)

    def _send_one(self, claimed: Claimed) -> SendResult | ChannelError:
        try:
            return self.channels.get(claimed.outgoing.channel).send(claimed.outgoing)
        except ChannelError as exc:
            return exc
        except Exception as exc:  # a provider bug must not stop the other pings
            log.exception("provider raised for ping %s", claimed.ping_id)
            return ChannelError(f"{type(exc).__name__}: {exc}", permanent=False)

    def _record_sends(self, claimed: list[Claimed], results: list[SendResult | ChannelError]) -> None:
        now = self.clock.now()
        with session_scope(self.engine) as s:
            loaded = {p.id: p for p in s.exec(select(Ping).where(col(Ping.id).in_([c.ping_id for c in claimed]))).all()}
            for c, result in zip(claimed, results, strict=True):
                ping = loaded[c.ping_id]
                if ping.state != PingState.dispatching.value:
                    # Answered (link, reply) while the provider call was still returning: the
                    # acknowledgement stands; only the send facts are added.
                    if isinstance(result, SendResult):
                        ping.sent_at = ping.sent_at or now
                        ping.provider_ref = ping.provider_ref or result.provider_ref
                        ping.deadline_at = ping.deadline_at or now + timedelta(seconds=c.ack_deadline_s)
                        s.add(ping)
                        records.ping_event(s, ping, ev.PING_SENT, now, self.actor, provider=ping.provider,
                                       provider_ref=result.provider_ref, deadline_at=ping.deadline_at)
                    continue
                if isinstance(result, SendResult):
                    ping.state = PingState.sent.value
                    ping.sent_at = now
                    ping.provider_ref = result.provider_ref
                    ping.deadline_at = now + timedelta(seconds=c.ack_deadline_s)
                    s.add(ping)
                    records.ping_event(s, ping, ev.PING_SENT, now, self.actor, provider=ping.provider,
                                   provider_ref=result.provider_ref, deadline_at=ping.deadline_at)
                    records.log_change(ping, "sent", now)
                    if result.delivered:
                        records.mark_delivered(s, ping, now, self.actor)
                else:
                    self._fail(s, ping, result, now)

    def _fail(self, s: Session, ping: Ping, error: ChannelError, now: datetime) -> None:
        if error.permanent:
            outcome = Outcome.bounced if error.code == "bounced" else Outcome.invalid_endpoint
            records.settle(s, ping, outcome, now, self.actor, state=PingState.failed, reason=error.message)
            records.flag_endpoint(s, ping, EndpointStatus.suspect, now, self.actor, error.message)
        else:
            records.settle(s, ping, Outcome.provider_failure, now, self.actor, state=PingState.failed, reason=error.message)
            records.record_endpoint_outcome(s, ping, now)
        self._follow_up(s, ping, now)

    # ------------------------------------------------------------------ reports
    def poll_channels(self, now: datetime | None = None) -> int:
        reports: list[ChannelReport] = []
        now = now or self.clock.now()
        for channel in self.channels.active():
            reports.extend(channel.poll_reports(now))
        if reports:
            self.apply_reports(reports)
        return len(reports)

    def apply_reports(self, reports: list[ChannelReport], actor: str | None = None) -> list[records.AckResult | None]:
        out: list[records.AckResult | None] = []
        actor = actor or self.actor
        # durable: acknowledgements are among these and must survive a power cut.
        with session_scope(self.engine, durable=True) as s:
            for report in sorted(reports, key=lambda r: r.at):
                out.append(self._apply(s, report, actor))
        return out

    def apply_report_in(self, s: Session, report: ChannelReport, actor: str) -> records.AckResult | None:
        """Apply one report inside the caller's (durable) transaction, with the same
        follow-up (retry, escalation) as ``apply_reports``: for the mail reader, which
        records the inbound message and its effect atomically."""
        return self._apply(s, report, actor)

    def _apply(self, s: Session, report: ChannelReport, actor: str) -> records.AckResult | None:
        ping = records.find_ping(s, ping_id=report.ping_id, provider_ref=report.provider_ref, token=report.token)
        if ping is None:
            log.warning("report %s for an unknown ping (ref %s) ignored", report.kind, report.provider_ref)
            return None
        at = report.at
        if report.kind in ("delivered", "ringing"):
            records.mark_delivered(s, ping, at, actor, status=report.kind)
            return None
        if report.kind == "acked":
            return records.acknowledge(s, ping, at, method=report.method or "unknown", actor=actor, by=report.by,
                                       suspicious_within=_secs(self.settings.ack_suspicious_seconds))
        if ping.state not in records.AWAITING_ACK:
            return None  # already settled (e.g. expired): a late voicemail/bounce changes nothing
        if report.kind == "voicemail":
            records.settle(s, ping, Outcome.voicemail, at, actor, state=PingState.expired, reason=report.detail)
            records.record_endpoint_outcome(s, ping, at)
        elif report.kind == "away":
            records.settle(s, ping, Outcome.away, at, actor, state=PingState.expired, reason=report.detail)
            records.record_endpoint_outcome(s, ping, at)
        elif report.kind == "bounced":
            records.settle(s, ping, Outcome.bounced, at, actor, state=PingState.failed, reason=report.detail)
            records.flag_endpoint(s, ping, EndpointStatus.suspect, at, actor, report.detail or "bounced")
        elif report.kind == "failed":
            outcome = Outcome.invalid_endpoint if report.permanent else Outcome.provider_failure
            records.settle(s, ping, outcome, at, actor, state=PingState.failed, reason=report.detail)
            if report.permanent:
                records.flag_endpoint(s, ping, EndpointStatus.suspect, at, actor, report.detail)
        self._follow_up(s, ping, max(at, self.clock.now()))
        return None

    # ------------------------------------------------------------------ deadlines
    def expire_due(self, now: datetime) -> int:
        with session_scope(self.engine) as s:
            due = s.exec(select(Ping).where(col(Ping.state).in_(records.AWAITING_ACK), col(Ping.deadline_at) <= now)
                         .order_by(col(Ping.deadline_at))).all()
            for ping in due:
                records.settle(s, ping, Outcome.delivered_no_ack, now, self.actor, state=PingState.expired,
                               reason="no acknowledgement before the deadline")
                records.record_endpoint_outcome(s, ping, now)
                self._follow_up(s, ping, now)
            return len(due)

    def _follow_up(self, s: Session, ping: Ping, now: datetime) -> None:
        follow_up(s, ping, now, self.settings, self.actor)

    # ------------------------------------------------------------------ completion
    def complete_finished(self, now: datetime) -> int:
        from scheduler.summary import run_summary

        done = 0
        with session_scope(self.engine) as s:
            running = s.exec(select(TestRun).where(TestRun.status == RunStatus.running.value)).all()
            for run in running:
                open_count = s.exec(select(func.count()).select_from(Ping).where(
                    Ping.run_id == run.id, col(Ping.state).in_(records.OPEN_STATES))).one()
                if open_count:
                    continue
                run.status = RunStatus.completed.value
                run.finished_at = now
                s.add(run)
                summary = run_summary(s, run.id or 0)
                ev.record_event(s, at=now, actor=self.actor, kind=ev.RUN_COMPLETED, run_id=run.id,
                                summary={f"{r.organisation_code}/{r.channel}": r.verdict for r in summary.rows})
                log.info("run=%s completed", run.id)
                done += 1
        return done

    def is_settled(self, run_id: int) -> bool:
        with session_scope(self.engine) as s:
            run = s.get(TestRun, run_id)
            return run is not None and run.status in (RunStatus.completed.value, RunStatus.aborted.value, RunStatus.missed.value)


def _secs(value: float) -> timedelta:
    return timedelta(seconds=value)
