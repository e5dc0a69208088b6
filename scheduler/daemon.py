"""The daemon: wait to be leader, then drive the engine.

Two timers (scheduler.timers) send attempts when they are due and judge deadlines when they
pass, to the millisecond; APScheduler 3.x fires the rest as in-memory interval jobs in the
leader: the tick (runs to start, provider reports, runs to close, the timers' refresh),
housekeeping, the leader check (a shared job store would run jobs twice and its thread can
die silently). Schedules live in our own tables.
Losing the leader lock stops dispatching at once: the tick raises ``LeadershipLost``,
the jobs are shut down, and the process goes back to standby.
"""
from __future__ import annotations

import logging
import random
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor as APThreadPool
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine

from channels.registry import ChannelSet, check_channel_providers
from commtest.clock import Clock, SystemClock
from commtest.errors import CommtestError, DatabaseError, LeadershipLost
from commtest.settings import Settings
from scheduler.engine import RunEngine
from scheduler.heartbeat import Heartbeat
from scheduler.leader import LeaderLock, leader_lock_for
from scheduler.planning import announce_due, mark_fired, plan_schedules
from scheduler.timers import LeaderTimers

log = logging.getLogger(__name__)
# A tick still running when the next is due is skipped on purpose (max_instances=1);
# APScheduler reports each skip as a warning, which is noise here.
logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)  # "Running job" every tick


@dataclass(frozen=True)
class ExtraJob:
    """A job the composing command adds (e.g. the monthly report), run only by the leader."""

    name: str
    func: Callable[[], Any]
    trigger: str
    trigger_args: dict[str, Any] = field(default_factory=dict)


class Daemon:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        clock: Clock,
        *,
        channels: ChannelSet | None = None,
        lock: LeaderLock | None = None,
        extra_jobs: list[ExtraJob] | None = None,
        sync_playbooks: Callable[[], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        check_channel_providers(settings)
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.lock = lock or leader_lock_for(settings.database_url)
        self.channels = channels
        self.extra_jobs = extra_jobs or []
        self.sync_playbooks = sync_playbooks
        self.rng = rng or secrets.SystemRandom()
        self.stop_event = threading.Event()
        self._lost = threading.Event()
        self._wake = threading.Event()  # set on stop and on leadership lost: the leading loop looks
        self.runs: RunEngine | None = None
        self.heartbeat: Heartbeat | None = None
        self.timers: LeaderTimers | None = None
        self.is_leader = threading.Event()

    # ---------------------------------------------------------------- lifecycle
    def stop(self) -> None:
        self.stop_event.set()
        self._wake.set()
        if self.runs is not None:
            self.runs.stopping.set()

    def run(self) -> int:
        """Run until ``stop()``; returns the exit code."""
        while not self.stop_event.is_set():
            if not self._become_leader():
                return 0 if self.stop_event.is_set() else 1
            try:
                self._lead()
            finally:
                self.is_leader.clear()
                self.lock.release()
            if self._lost.is_set() and not self.stop_event.is_set():
                log.error("leadership lost: dispatching stopped; waiting to lead again")
                self._lost.clear()
                continue
        return 0

    def _become_leader(self) -> bool:
        try:
            if self.lock.acquire(wait=False):
                return True
        except DatabaseError as exc:
            # The database is away (restarting, failing over): a daemon that just lost
            # leadership with it must wait for it like a standby, not exit (fault suite:
            # a PostgreSQL restart that took longer than a leader check ended the daemon).
            if not self.settings.leader_wait:
                raise
            log.warning("cannot reach the database to compete for leadership (%s); waiting as a standby until it "
                        "is back", exc)
        else:
            holder = self.lock.describe_holder()
            if not self.settings.leader_wait:
                raise CommtestError(f"another commtest daemon is the leader ({holder}); not starting "
                                    "(COMMTEST_LEADER_WAIT=false)")
            log.warning("another commtest daemon is the leader (%s); waiting as a standby", holder)
        while not self.stop_event.is_set():
            if self.lock.acquire(wait=True, timeout=1.0):
                log.info("became the leader")
                return True
        return False

    def _lead(self) -> None:
        self.runs = RunEngine(self.engine, self.settings, self.clock, self.channels or ChannelSet(self.settings, self.clock),
                              leader_check=self.lock.check, prepare_ahead=True)
        self.heartbeat = Heartbeat(self.engine, self.clock, holder=self.runs.actor, tick_seconds=self.settings.tick_seconds,
                                   every_seconds=self.settings.heartbeat_seconds)
        self.runs.recover()
        runs = self.runs
        self.timers = LeaderTimers(self.engine, self.clock, dispatch=lambda _now: runs.dispatch_due(),
                                   deadlines=runs.judge_deadlines, idle_wait=self.settings.tick_seconds,
                                   on_lost=self._lose)
        runs.on_planned = self.timers.dispatch.add
        runs.on_sent = self.timers.deadlines.add
        runs.next_deadline = self.timers.deadlines.peek
        timers_stop = threading.Event()
        sched = BackgroundScheduler(
            executors={"default": APThreadPool(4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )
        sched.add_job(self._tick, "interval", seconds=self.settings.tick_seconds, id="tick")
        # The first housekeeping (playbook sync, planning) runs at once, in the scheduler's pool:
        # a slow sync must not keep the tick from starting. APScheduler's timers follow the
        # wall clock, whatever clock the engine is given.
        sched.add_job(self._housekeeping, "interval", seconds=60, id="housekeeping",
                      next_run_time=SystemClock().now())
        sched.add_job(self._check_leader, "interval", seconds=1, id="leader-check")
        for job in self.extra_jobs:
            sched.add_job(self._guard(job.func, job.name), job.trigger, id=job.name, **job.trigger_args)
        self.is_leader.set()
        self.timers.start(timers_stop)
        sched.start()
        log.info("leading: ticking every %ss; timers wake for attempts and deadlines when due", self.settings.tick_seconds)
        try:
            while not self.stop_event.is_set() and not self._lost.is_set():
                # Woken at once by a stop or a loss; the timeout only bounds a missed wake-up.
                self._wake.wait(5.0)
                self._wake.clear()
        finally:
            # A clean stop lets the batch in flight finish its provider calls (runs.stopping keeps
            # a new one from starting), and the running tick too (wait=True).
            timers_stop.set()
            self.timers.join()
            sched.shutdown(wait=True)
            # Channels handed in by the caller are theirs, and serve the next leadership too:
            # closing them here emptied the set, so a re-elected daemon sent elsewhere.
            self.runs.close(close_channels=self.channels is None)
            self.runs = None

    # ---------------------------------------------------------------- jobs
    def _guard(self, func: Callable[[], Any], name: str) -> Callable[[], None]:
        def job() -> None:
            if self._lost.is_set() or self.stop_event.is_set():
                return
            try:
                func()
            except LeadershipLost:
                self._lose()
            except Exception:  # a failing job must not kill APScheduler's thread silently
                log.exception("job %s failed", name)
        return job

    def _tick(self) -> None:
        runs = self.runs
        if runs is None or self._lost.is_set() or self.stop_event.is_set():
            return
        if self.heartbeat is not None:
            self.heartbeat.tick(runs.decision_lateness())
        try:
            runs.tick(timers=True)
            if self.timers is not None:
                self.timers.refresh()
        except LeadershipLost:
            self._lose()
        except Exception:
            log.exception("tick failed; the next tick retries")

    def _lose(self) -> None:
        self._lost.set()
        self._wake.set()

    def _check_leader(self) -> None:
        if not self.lock.check():
            self._lose()

    def _housekeeping(self) -> None:
        runs = self.runs
        if runs is None:
            return
        try:
            if self.sync_playbooks is not None:
                self.sync_playbooks()
            now = self.clock.now()
            plan_schedules(runs, now, self.rng)
            announce_due(runs, now)
            mark_fired(runs)
        except Exception:
            log.exception("housekeeping failed; retried in a minute")


def playbook_syncer(engine: Engine, folder: Path, clock: Clock, *, max_bytes: int | None = None) -> Callable[[], None]:
    """The leader's sync of the playbook folder (in its housekeeping). A hostile or broken
    file is reported and skipped: its last good revision stays in use."""
    def sync() -> None:
        from playbooks.store import sync_folder

        report = (sync_folder(engine, folder, clock) if max_bytes is None
                  else sync_folder(engine, folder, clock, max_bytes=max_bytes))
        for path, error in report.invalid:
            log.warning("playbook %s is invalid; its last good revision stays in use:\n%s", path, error)
    return sync
