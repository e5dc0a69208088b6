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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from channels.base import ChannelReport
from channels.registry import ChannelSet, is_simulated
from commtest import events as ev
from commtest.clock import Clock, SystemClock, monotonic
from commtest.db import read_connection, read_session, run_write, session_scope, sqlite_path
from commtest.errors import ChannelError, CommtestError, ConfigError, LeadershipLost, NotFoundError
from commtest.facts import RunFacts, facts_of_run, write_run_facts
from commtest.masking import mask_address
from commtest.models import (
    Event,
    Outcome,
    Ping,
    PingState,
    Playbook,
    RunStatus,
    TestRun,
)
from commtest.settings import Settings
from playbooks.schema import PlaybookSpec, StepSpec
from scheduler import records
from scheduler.bulk import insert_rows, insert_rows_returning_ids
from scheduler.dispatch import Claimed, DueQueue, Prepared, claim
from scheduler.fanout import FanOut
from scheduler.send_results import Sent, record_sends
from scheduler.silence import ENDED_COLUMNS, Ended, follow_up_many
from scheduler.planner import PlannedPing, Target, initial_plan
from scheduler.prepare_process import Ahead, ProcessPreparer
from scheduler.reconcile import reconcile_dispatching
from scheduler.reports_in import apply_report, apply_reports
from scheduler.specs import spec_for_revision
from scheduler.video_rooms import close_rooms_of_ended_runs

log = logging.getLogger(__name__)

# Time one tick may spend starting dispatch batches before it judges deadlines.
DISPATCH_BUDGET = timedelta(seconds=1)
# How many batches of due attempts the dispatcher reads at once (scheduler.dispatch.DueQueue): an
# attempt planned meanwhile waits at most this many batches (a fraction of a second).
DUE_WINDOW_BATCHES = 8
# Deadline decisions per write transaction: short enough that an acknowledgement never waits long
# behind one, big enough that thousands of deadlines in the same second cost a few statements.
EXPIRY_BATCH = 500
# Longest the dispatcher waits for deadline decisions before it goes on anyway, and how far
# ahead it looks for a deadline about to pass (longer than one claim or record holds the lock).
GIVE_WAY_S = 1.0
GIVE_WAY_AHEAD = timedelta(milliseconds=30)
_NO_ACK = "no acknowledgement before the deadline"
_NO_RECORD = "no coordinator recorded an answer before the deadline"
PT = Ping.__table__  # type: ignore[attr-defined]
ET = Event.__table__  # type: ignore[attr-defined]


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
        prepare_ahead: bool = False,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.channels = channels or ChannelSet(settings, clock)
        self.actor = actor or default_actor()
        self.leader_check = leader_check
        # Provider calls: made by the dispatcher itself while they return at once, fanned out to
        # helper threads as soon as one waits (scheduler.fanout), never more than the workers.
        self._pool = FanOut(settings.dispatch_workers, "dispatch")
        self._recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="record-sends")
        # ``prepare_ahead``: this engine sends waves (the daemon's leader, ``commtest run``), so its
        # next batch is prepared by a helper process (scheduler.prepare_process), where it can be:
        # the real clock (a test's frozen clock cannot cross to another process) and a database
        # another process can open. An engine that only starts or aborts runs (a page, the API)
        # never starts one.
        self.preparer = ProcessPreparer(settings) if (
            prepare_ahead and settings.dispatch_prepare == "process" and isinstance(clock, SystemClock)
            and (engine.dialect.name != "sqlite" or sqlite_path(str(engine.url)) is not None)) else None
        self._no_decision = threading.Event()  # clear while deadlines are being decided
        self._no_decision.set()
        self._decided = threading.Event()  # set each time a round of decisions ends
        self._decider: threading.Thread | None = None
        # The earliest deadline the leader's timer waits for (scheduler.timers), if it runs.
        self.next_deadline: Callable[[], datetime | None] | None = None
        # Set on a clean stop: the batch in flight finishes, no new batch starts.
        self.stopping = threading.Event()
        # Told when attempts are planned or sent, with when they are due or expire: the leader's
        # timers (scheduler.timers) wake at those instants instead of polling.
        self.on_planned: Callable[[list[datetime]], None] | None = None
        self.on_sent: Callable[[list[datetime]], None] | None = None
        # Deadline decisions: how late the latest was committed, the worst since last asked, and
        # how many transactions lost a race and ran again (the heartbeat reports them).
        self.decision_lateness_ms = 0
        self._late_max_ms = 0
        self.decision_retries = 0

    def close(self, *, close_channels: bool = True) -> None:
        self._pool.close()  # after a clean stop, which finishes the provider calls in flight
        self._recorder.shutdown(wait=True)
        if self.preparer is not None:
            self.preparer.close()
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
        """Start a planned run now: plan the first attempt of every initial step.

        A run whose playbook needs a channel kind with no provider configured is not
        started (``run.refused``, status aborted): nothing is silently simulated."""
        now = self.clock.now()
        with session_scope(self.engine) as s:
            run = s.exec(select(TestRun).where(TestRun.id == run_id).with_for_update()).first()
            if run is None:
                raise NotFoundError(f"run {run_id} not found")
            if run.status != RunStatus.planned.value:
                return 0
            spec = spec_for_revision(s, run.revision_id)
            missing = self.missing_kinds(spec)
            if missing:
                reason = refusal(spec, missing)
                run.status = RunStatus.aborted.value
                run.finished_at = now
                s.add(run)
                ev.record_event(s, at=now, actor=self.actor, kind=ev.RUN_REFUSED, run_id=run.id, kinds=missing,
                                reason=reason)
                log.error("run=%s not started: %s", run.id, reason)
                return 0
            run.status = RunStatus.running.value
            run.started_at = now
            s.add(run)
            ev.record_event(s, at=now, actor=self.actor, kind=ev.RUN_STARTED, run_id=run.id, started_by=run.started_by)
            planned, gaps = initial_plan(s, spec)
            due = self._insert_planned(s, run, planned, gaps, now)
            log.info("run=%s started: %d pings planned, %d gaps", run.id, len(planned), len(gaps))
        if planned and self.preparer is not None:
            self.preparer.warm()  # a wave of attempts is due: the helper starts meanwhile
        if due and self.on_planned is not None:
            self.on_planned(due)
        return len(planned)

    def _insert_planned(self, s: Session, run: TestRun, planned: list[PlannedPing],
                        gaps: list[tuple[Target | None, StepSpec, str]], now: datetime) -> list[datetime]:
        """The first attempts of a run and their events, in two INSERTs (thousands of attempts
        are planned in a fraction of a second); returns when they are due."""
        s.flush()
        conn = s.connection()
        attempts: dict[tuple[int, str], int] = {}  # the run has no attempts yet: counted here
        rows: list[dict[str, object]] = []
        for p in planned:
            key = (p.target.contact_point_id, p.step.channel)
            attempts[key] = attempts.get(key, 0) + 1
            rows.append({
                "run_id": run.id, "contact_point_id": p.target.contact_point_id, "endpoint_id": p.endpoint_id,
                "organisation_code": p.target.organisation_code, "channel": p.step.channel,
                "provider": self.channels.providers(p.step.channel)[0], "address": p.address,
                "language": p.target.language, "step": p.step.id, "attempt": attempts[key], "step_attempt": 1,
                "state": PingState.pending.value, "due_at": now + p.step.start_after, "ack_suspicious": False,
                "simulated": False})
        ids = insert_rows_returning_ids(conn, PT, rows)
        events = [
            {"at": now, "actor": self.actor, "kind": ev.PING_PLANNED, "run_id": run.id, "ping_id": ping_id,
             "organisation_code": r["organisation_code"], "channel": r["channel"], "outcome": None,
             "response_ms": None, "data": ev.jsonable({
                 "contact_point_id": r["contact_point_id"], "step": r["step"], "attempt": r["attempt"],
                 "step_attempt": 1, "endpoint_id": r["endpoint_id"], "address": mask_address(str(r["address"])),
                 "due_at": r["due_at"], "contact_point": p.target.contact_point_code,
                 "field": p.target.field_code})}
            for ping_id, r, p in zip(ids, rows, planned, strict=True)]
        events.extend(
            {"at": now, "actor": self.actor, "kind": ev.RUN_GAP, "run_id": run.id, "ping_id": None,
             "organisation_code": target.organisation_code if target else None, "channel": step.channel,
             "outcome": None, "response_ms": None, "data": ev.jsonable({
                 "contact_point": target.contact_point_code if target else None,
                 "field": target.field_code if target else None, "step": step.id, "reason": reason})}
            for target, step, reason in gaps)
        if events:
            insert_rows(conn, ET, events)
        return sorted({r["due_at"] for r in rows})  # type: ignore[type-var]

    def missing_kinds(self, spec: PlaybookSpec) -> list[str]:
        """The channel kinds ``spec`` uses (escalation steps included) that have no provider."""
        return [kind for kind in spec.channels() if not self.channels.providers(kind)]

    def refuse_unconfigured(self, playbook_id: str) -> None:
        """Raise ``ConfigError`` (exit 2) when the playbook needs a kind with no provider."""
        with read_session(self.engine) as s:
            pb = s.get(Playbook, playbook_id)
            if pb is None or pb.current_revision_id is None:
                raise NotFoundError(f"playbook {playbook_id!r} not found; `commtest playbook list` shows the known ones")
            spec = spec_for_revision(s, pb.current_revision_id)
        missing = self.missing_kinds(spec)
        if missing:
            raise ConfigError(refusal(spec, missing) + "; nothing was started")

    def abort_run(self, run_id: int, *, by: str, reason: str = "", actor: str | None = None) -> int:
        """Abort a run: attempts not sent yet are cancelled, attempts waiting for their answer
        end ``aborted``; answers recorded before the abort still count."""
        now = self.clock.now()

        def work(s: Session) -> int:
            run = s.exec(select(TestRun).where(TestRun.id == run_id).with_for_update()).first()
            if run is None:
                raise NotFoundError(f"run {run_id} not found")
            if run.status in records.CLOSED_RUN:
                raise CommtestError(f"run {run_id} is already {run.status}; there is nothing to abort")
            cancelled = 0
            who = actor or f"cli:{by}"
            for ping in s.exec(select(Ping).where(Ping.run_id == run_id, col(Ping.state).in_(records.OPEN_STATES))
                               .order_by(col(Ping.id))).all():
                if ping.state == PingState.pending.value:
                    cancelled += records.settle(s, ping, Outcome.cancelled, now, who, state=PingState.cancelled,
                                                from_states=(PingState.pending.value,), reason="run aborted")
                elif ping.state in records.AWAITING_ACK:
                    records.settle(s, ping, Outcome.aborted, now, who, state=PingState.expired,
                                   from_states=records.AWAITING_ACK, reason="run aborted before an answer came")
            run.status = RunStatus.aborted.value
            run.finished_at = now
            s.add(run)
            ev.record_event(s, at=now, actor=who, kind=ev.RUN_ABORTED, run_id=run_id, by=by, reason=reason)
            self._close_facts(s, run)
            return cancelled

        return run_write(self.engine, work)

    # ------------------------------------------------------------------ recovery
    def recover(self) -> int:
        """Mark pings left ``dispatching`` by a crash as ``unknown``: never resend them (those
        their provider turns out to have are recorded as sent first: scheduler.reconcile)."""
        reconcile_dispatching(self.engine, self.clock, self.channels, self.actor)
        now = self.clock.now()

        def work(s: Session) -> int:
            stuck = s.exec(select(Ping).where(Ping.state == PingState.dispatching.value).order_by(col(Ping.id))).all()
            n = 0
            for ping in stuck:
                if records.settle(s, ping, Outcome.unknown, now, self.actor, state=PingState.unknown,
                                  from_states=(PingState.dispatching.value,),
                                  reason="crash while dispatching; not resent — check with the centre"):
                    records.ping_event(s, ping, ev.PING_UNKNOWN, now, self.actor,
                                       reason="found dispatching at start-up: the provider may or may not have sent it")
                    n += 1
            return n

        n = run_write(self.engine, work, durable=True)
        if n:
            log.warning("%d ping(s) were dispatching during a crash; marked unknown, not resent", n)
        return n

    # ------------------------------------------------------------------ the loop
    def tick(self, *, timers: bool = False) -> TickStats:
        """One pass over everything due. With ``timers`` the leader's timers (scheduler.timers)
        send attempts and judge deadlines the moment they are due, and the tick does the rest."""
        stats = TickStats()
        now = self.clock.now()
        stats.started, stats.missed = self.start_due_runs(now)
        if not timers:
            stats.dispatched = self.dispatch_due(budget=DISPATCH_BUDGET)
        # Reports are read up to ``seen`` and deadlines judged at the same instant, so an
        # answer that arrived just before its deadline is never mistaken for silence.
        seen = self.clock.now()
        stats.reports = self.poll_channels(seen)
        if not timers:
            stats.expired = self.expire_due(seen)
        stats.completed = self.complete_finished(self.clock.now())
        if self.preparer is not None:
            self.preparer.close_if_idle()
        # A run that ended takes its video room with it (nothing is read while no room is open).
        close_rooms_of_ended_runs(self.engine, self.channels)
        return stats

    def _ensure_leader(self) -> None:
        if self.leader_check is not None and not self.leader_check():
            raise LeadershipLost("leadership lost: dispatching stopped")

    def start_due_runs(self, now: datetime) -> tuple[int, int]:
        with read_session(self.engine) as s:
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
        """Send due pings. Each batch claims no more attempts than there are workers to send
        them, and every claimed attempt's provider call starts right after the durable
        ``dispatching`` commit: after a crash only attempts whose call may have started are
        ``unknown`` (ARCHITECTURE.md invariant 1; issue: a crash made whole batches unknown).
        With ``budget``, stop starting new batches once it is spent, so that a big wave of
        pings does not hold back the deadline decisions of the same tick."""
        total = 0
        started = self.clock.now()
        recording: Future[None] | None = None
        prepared: Prepared | None = None
        window = DUE_WINDOW_BATCHES * self.settings.dispatch_workers
        queue = DueQueue(window)
        helper = Ahead(self.preparer, window)  # the helper process, when it is ready
        helper.ask(self.clock.now(), min(self.settings.dispatch_workers, limit))
        try:
            while total < limit and not self.stopping.is_set():
                if budget is not None and total and self.clock.now() - started >= budget:
                    break
                self._ensure_leader()
                self._give_way()
                batch = min(self.settings.dispatch_workers, limit - total)
                if prepared is None:
                    prepared = helper.take(batch) or self._prepare(queue, batch)
                # The helper prepares the batch after this one while this one is claimed, sent, recorded.
                helper.ask(self.clock.now(), min(self.settings.dispatch_workers, limit - total - batch))
                # The next batch is claimed only once the previous one is recorded: a crash leaves
                # at most one batch unknown. Its messages were prepared meanwhile (below).
                if recording is not None:
                    recording.result()
                    recording = None
                claimed = self._claim(prepared)
                poisoned = bool(prepared.failed)
                prepared = None
                if not claimed:
                    if poisoned:
                        continue  # a batch of attempts that could not be prepared: the next ones are still due
                    break
                if self.preparer is not None:
                    self.preparer.warm()  # more may come: the next wave finds the helper ready
                # Leadership may have gone while claiming: then nothing is sent. The claimed
                # attempts stay ``dispatching`` and the next leader marks them unknown (never twice).
                self._ensure_leader()
                results = self._pool.map(self._send_one, claimed)
                total += len(claimed)
                # The batch is recorded (its commit waits for the disk) while the next one's
                # messages are rendered (which needs no lock): one batch at a time, in order.
                recording = self._recorder.submit(self._record_sends, claimed, results)
                if total < limit and not self.stopping.is_set() and not helper.asked:
                    prepared = self._prepare(queue, min(self.settings.dispatch_workers, limit - total))
        finally:
            helper.drop()  # a batch prepared and not claimed: its attempts stay pending
            if recording is not None:
                recording.result()  # a clean stop: the batch sent is recorded before we return
        return total

    def _prepare(self, queue: DueQueue, batch: int) -> Prepared:
        """The due attempts and their messages, rendered in a read transaction (no write lock);
        ``_claim`` then takes those still pending."""
        with read_connection(self.engine) as conn:
            return queue.next_batch(conn, self.clock.now(), batch, self.settings)

    def _claim(self, prepared: Prepared) -> list[Claimed]:
        # durable: the ``dispatching`` mark must survive a power cut, or a ping could go twice.
        # An attempt taken meanwhile (cancelled by an answer, claimed before) is simply not claimed.
        if not prepared.ready and not prepared.failed:
            return []
        self._give_way()
        return run_write(self.engine, lambda s: claim(s, prepared, self.clock.now(), self.settings, self.actor),
                         durable=True)

    def _send_one(self, claimed: Claimed) -> Sent | ChannelError:
        """Hand the attempt to its kind's providers in failover order: a provider that failed
        on its side (not the endpoint, not ambiguously) passes the attempt to the next."""
        kind = claimed.outgoing.channel
        last: ChannelError | None = None
        names = self.channels.providers(kind)
        for i, name in enumerate(names):
            simulated = False
            try:
                channel = self.channels.get(kind, name)
                simulated = is_simulated(channel)
                return Sent(channel.send(claimed.outgoing), name, simulated)
            except ChannelError as exc:
                last = exc
            except Exception as exc:  # a provider bug must not stop the other pings
                log.exception("provider %s raised for ping %s", name, claimed.ping_id)
                last = ChannelError(f"{type(exc).__name__}: {exc}", permanent=False)
            # A simulated provider's refusal says nothing about the real endpoint (see _fail).
            last.simulated = simulated  # type: ignore[attr-defined]
            if last.permanent or last.ambiguous or i + 1 == len(names):
                break
            log.warning("ping %s: provider %s failed (%s); trying %s", claimed.ping_id, name, last.message, names[i + 1])
        return last or ChannelError(f"no {kind} provider", permanent=False)

    def judge_deadlines(self, _due: datetime | None = None) -> int:
        """The deadline timer's work: read what the providers reported, then judge every
        deadline passed by now (so an answer that came just before its deadline counts).

        While it runs, the dispatcher pauses between its steps (``_give_way``): a wave of
        sends must not make a deadline late (they share the write lock and the interpreter)."""
        self._ensure_leader()
        self._decider = threading.current_thread()
        self._no_decision.clear()
        try:
            seen = self.clock.now()
            self.poll_channels(seen)
            return self.expire_due(seen)
        finally:
            self._no_decision.set()
            self._decided.set()

    def _deciding(self) -> bool:
        """Whether this thread is the one deciding deadlines (it never waits for itself)."""
        return not self._no_decision.is_set() and threading.current_thread() is self._decider

    def _give_way(self) -> None:
        """Let deadline decisions go first: those in progress, and those due before the next
        step of sending would be over (a claim or a record holds the write lock for a few ms,
        and a decision waiting for it would be late by as much). A late send only moves its
        own deadline; a late decision misjudges a centre. Never more than ``GIVE_WAY_S``:
        sending must not starve either."""
        give_up = monotonic() + GIVE_WAY_S
        while monotonic() < give_up:
            if not self._no_decision.wait(max(0.0, give_up - monotonic())):
                return
            head = self.next_deadline() if self.next_deadline is not None else None
            if head is None or head > self.clock.now() + GIVE_WAY_AHEAD:
                return
            self._decided.wait(0.005)  # the deadline timer is about to wake: wait for its decision
            self._decided.clear()

    def _record_sends(self, claimed: list[Claimed], results: list[Sent | ChannelError]) -> None:
        self._give_way()
        recorded = run_write(self.engine, lambda s: record_sends(s, claimed, results, self.clock.now(), self.settings,
                                                                 self.actor))
        if recorded.deadlines and self.on_sent is not None:
            self.on_sent(recorded.deadlines)
        if recorded.due and self.on_planned is not None:
            self.on_planned(recorded.due)

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
        return apply_reports(self.engine, self.settings, self.clock, reports, actor or self.actor,
                             give_way=None if self._deciding() else self._give_way)

    def apply_report_in(self, s: Session, report: ChannelReport, actor: str) -> records.AckResult | None:
        """Apply one report inside the caller's (durable) transaction: for the mail reader,
        which records the inbound message and its effect atomically."""
        return apply_report(s, report, self.settings, actor, self.clock.now())

    # ------------------------------------------------------------------ deadlines
    def expire_due(self, now: datetime) -> int:
        """Settle every attempt whose deadline passed by ``now`` unanswered, and follow each
        up, in short set-based batches: one conditional UPDATE per batch (an answer committed
        meanwhile wins), one INSERT of their events, the follow-up of the whole batch
        (scheduler.silence). A batch that loses a race is run again and counted."""
        total = 0
        while True:
            batch = run_write(self.engine, lambda s: self._expire_batch(s, now), on_retry=self._lost_race)
            total += batch
            if batch < EXPIRY_BATCH:
                return total

    def _lost_race(self, exc: BaseException) -> None:
        self.decision_retries += 1

    def decision_lateness(self) -> tuple[int, int, int]:
        """(latest, worst since last asked, retries so far) of the deadline decisions, in ms."""
        worst, self._late_max_ms = self._late_max_ms, 0
        return self.decision_lateness_ms, worst, self.decision_retries

    def _expire_batch(self, s: Session, due_by: datetime) -> int:
        conn = s.connection()
        # Stamped once this transaction holds the write lock: the lateness it records is the real one.
        decided = self.clock.now()
        due = (sa.select(PT.c.id).where(PT.c.state.in_(records.AWAITING_ACK), PT.c.deadline_at <= due_by)
               .order_by(PT.c.deadline_at, PT.c.id).limit(EXPIRY_BATCH))
        if conn.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)  # an answer being recorded holds its ping: it wins
        manual = PT.c.channel == "manual"
        rows = conn.execute(
            PT.update().where(PT.c.id.in_(due.scalar_subquery()), PT.c.state.in_(records.AWAITING_ACK))
            .values(state=PingState.expired.value, settled_at=decided,
                    outcome=sa.case((manual, Outcome.no_record.value), else_=Outcome.delivered_no_ack.value),
                    error=sa.case((manual, _NO_RECORD), else_=_NO_ACK))
            .returning(*ENDED_COLUMNS, PT.c.address, PT.c.attempt, PT.c.deadline_at, PT.c.sent_at, PT.c.due_at)
        ).all()
        if not rows:
            return 0
        rows = sorted(rows, key=lambda r: (r.deadline_at, r.id))
        insert_rows(conn, ET, [
            {"at": decided, "actor": self.actor, "kind": ev.PING_SETTLED, "run_id": r.run_id, "ping_id": r.id,
             "organisation_code": r.organisation_code, "channel": r.channel, "outcome": r.outcome,
             "response_ms": None, "data": {"reason": _NO_RECORD if r.channel == "manual" else _NO_ACK,
                                           "method": None}}
            for r in rows])
        for r in rows:
            records.log_change(r, r.outcome, decided)
            lateness = (decided - r.deadline_at).total_seconds()
            self.decision_lateness_ms = max(0, int(lateness * 1000))
            self._late_max_ms = max(self._late_max_ms, self.decision_lateness_ms)
        followed = follow_up_many(conn, [Ended.of(r) for r in rows], decided, self.settings, self.actor)
        if followed.due and self.on_planned is not None:
            self.on_planned(followed.due)
        return len(rows)

    # ------------------------------------------------------------------ completion
    def complete_finished(self, now: datetime) -> int:
        with read_session(self.engine) as s:
            running = s.exec(select(TestRun.id).where(TestRun.status == RunStatus.running.value)).all()
            candidates = [rid for rid in running if not s.exec(select(func.count()).select_from(Ping).where(
                Ping.run_id == rid, col(Ping.state).in_(records.OPEN_STATES))).one()]
        return sum(run_write(self.engine, lambda s, rid=rid: self._complete_one(s, rid, now)) for rid in candidates)

    def _complete_one(self, s: Session, run_id: int | None, now: datetime) -> int:
        # The run row first, FOR UPDATE: an answer being recorded holds it FOR SHARE, so it
        # lands before the close (and counts) or finds the run closed (and changes nothing).
        run = s.exec(select(TestRun).where(TestRun.id == run_id).with_for_update()).first()
        if run is None or run.status != RunStatus.running.value:
            return 0
        open_count = s.exec(select(func.count()).select_from(Ping).where(
            Ping.run_id == run.id, col(Ping.state).in_(records.OPEN_STATES))).one()
        if open_count:
            return 0
        run.status = RunStatus.completed.value
        run.finished_at = now
        s.add(run)
        s.flush()
        facts = self._close_facts(s, run)
        ev.record_event(s, at=now, actor=self.actor, kind=ev.RUN_COMPLETED, run_id=run.id,
                        summary={f"{v.organisation_code}/{v.channel}": v.verdict for v in facts.verdicts})
        log.info("run=%s completed", run.id)
        return 1

    def _close_facts(self, s: Session, run: TestRun) -> RunFacts:
        """Write the closed run's checks and verdicts once (commtest.facts), and each
        endpoint's last outcome."""
        spec = spec_for_revision(s, run.revision_id)
        facts = facts_of_run(s.connection(), run.id or 0, spec.fact_rules())
        write_run_facts(s, facts, run.fire_at or self.clock.now())
        records.record_endpoint_outcomes(s, run.id or 0)
        return facts

    def is_settled(self, run_id: int) -> bool:
        with read_session(self.engine) as s:
            run = s.get(TestRun, run_id)
            return run is not None and run.status in records.CLOSED_RUN


def unready_playbooks(engine: Engine, channels: ChannelSet) -> list[str]:
    """Why the daemon must not start: each playbook with an active schedule whose steps need
    a channel kind that has no provider (empty when every scheduled playbook can run)."""
    from commtest.models import Schedule

    with read_session(engine) as s:
        rows = s.exec(select(Playbook).where(col(Playbook.id).in_(
            select(Schedule.playbook_id).where(Schedule.paused == False)))).all()  # noqa: E712
        problems = []
        for pb in rows:
            if pb.current_revision_id is None:
                continue
            spec = spec_for_revision(s, pb.current_revision_id)
            missing = [k for k in spec.channels() if not channels.providers(k)]
            if missing:
                problems.append(refusal(spec, missing))
    return problems


def refusal(spec: PlaybookSpec, kinds: list[str]) -> str:
    """Which kinds a playbook needs that have no provider, the steps that use them, what to set."""
    needs = "; ".join(
        f"{kind!r} (step {', '.join(repr(s.id) for s in spec.steps if s.channel == kind)})" for kind in kinds
    )
    return (f"playbook {spec.id!r} needs {needs}, but no provider is configured for "
            f"{'it' if len(kinds) == 1 else 'them'}: set COMMTEST_CHANNELS (e.g. "
            f"'{{\"{kinds[0]}\": \"...\"}}', see docs/channels/README.md), or COMMTEST_SANDBOX=true "
            "for a rehearsal whose answers are simulated")


def _secs(value: float) -> timedelta:
    return timedelta(seconds=value)
