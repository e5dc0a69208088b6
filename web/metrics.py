"""``GET /metrics`` in the Prometheus text format (``prometheus-client``), computed from the
database at each scrape with a few read-only aggregate queries (cached for a few seconds, so
a scrape storm costs one computation): nothing is counted in process memory, so every replica
reports the same figures and a restart loses none.

* ``commtest_pings_total{channel,outcome}``: attempts by outcome (``open`` while unsettled);
* ``commtest_ack_latency_seconds{channel,simulated}``: histogram of acknowledgement latency
  (from ``ping.acked`` events: first contact of the attempt to the answer);
* ``commtest_provider_errors_total{channel,provider,outcome}``: attempts that failed on our
  side (``provider_failure``, ``unknown``, ``template_error``);
* ``commtest_dispatch_queue_depth``: attempts due and not yet handed to a provider;
  ``commtest_pings_in_flight{state}``: dispatching, sent, delivered;
* ``commtest_leader_up``, ``commtest_leader_heartbeat_age_seconds``, ``commtest_leader_info{holder}``,
  ``commtest_ticks_total``, ``commtest_tick_lateness_seconds``, ``commtest_tick_lateness_max_seconds``,
  ``commtest_deadline_lateness_seconds``, ``commtest_deadline_lateness_max_seconds`` and
  ``commtest_deadline_decision_retries_total``:
  from the leader's heartbeat (``scheduler.heartbeat``);
* ``commtest_runs{status}``, ``commtest_corrections_pending``.

``COMMTEST_METRICS_TOKEN`` set: a scrape must send ``Authorization: Bearer <token>``.
"""
from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Iterator

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from commtest import events as ev
from commtest.clock import Clock
from commtest.db import read_session
from commtest.models import DirectoryCorrection, Event, LeaderHeartbeat, Ping, TestRun
from commtest.settings import Settings

BUCKETS_S = (5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
OUR_SIDE = ("provider_failure", "unknown", "template_error")
CACHE_SECONDS = 5.0
P = Ping.__table__  # type: ignore[attr-defined]
E = Event.__table__  # type: ignore[attr-defined]
R = TestRun.__table__  # type: ignore[attr-defined]


class DatabaseCollector(Collector):
    def __init__(self, engine: Engine, clock: Clock, settings: Settings) -> None:
        self.engine, self.clock, self.settings = engine, clock, settings
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] > CACHE_SECONDS:
                self._cached = (time.monotonic(), self._compute())
            return iter(list(self._cached[1]))

    def _compute(self) -> list[Metric]:
        now = self.clock.now()
        out: list[Metric] = []
        with read_session(self.engine) as s:
            conn = s.connection()
            pings = CounterMetricFamily("commtest_pings", "Attempts by channel and outcome (open: not settled yet).",
                                        labels=["channel", "outcome"])
            for channel, outcome, n in conn.execute(sa.select(P.c.channel, P.c.outcome, sa.func.count())
                                                    .group_by(P.c.channel, P.c.outcome)):
                pings.add_metric([channel, outcome or "open"], n)
            out.append(pings)
            errors = CounterMetricFamily("commtest_provider_errors", "Attempts that failed on our side, by provider.",
                                         labels=["channel", "provider", "outcome"])
            for channel, provider, outcome, n in conn.execute(
                    sa.select(P.c.channel, P.c.provider, P.c.outcome, sa.func.count()).where(P.c.outcome.in_(OUR_SIDE))
                    .group_by(P.c.channel, P.c.provider, P.c.outcome)):
                errors.add_metric([channel, provider or "", outcome], n)
            out.append(errors)
            out.append(self._latency(conn))
            queue = GaugeMetricFamily("commtest_dispatch_queue_depth", "Attempts due and not yet handed to a provider.")
            queue.add_metric([], conn.execute(sa.select(sa.func.count()).select_from(P).where(
                P.c.state == "pending", P.c.due_at <= now)).scalar_one())
            out.append(queue)
            flight = GaugeMetricFamily("commtest_pings_in_flight", "Attempts handed to a provider and not settled.",
                                       labels=["state"])
            counts = dict(conn.execute(sa.select(P.c.state, sa.func.count()).where(
                P.c.state.in_(("dispatching", "sent", "delivered"))).group_by(P.c.state)).all())
            for state in ("dispatching", "sent", "delivered"):
                flight.add_metric([state], counts.get(state, 0))
            out.append(flight)
            runs = GaugeMetricFamily("commtest_runs", "Test runs by status.", labels=["status"])
            for status, n in conn.execute(sa.select(R.c.status, sa.func.count()).group_by(R.c.status)):
                runs.add_metric([status], n)
            out.append(runs)
            pending = GaugeMetricFamily("commtest_corrections_pending", "Directory corrections waiting for a coordinator.")
            pending.add_metric([], s.exec(sa.select(sa.func.count()).select_from(DirectoryCorrection).where(
                DirectoryCorrection.status == "pending")).one()[0])  # type: ignore[call-overload]
            out.append(pending)
            out.extend(self._leader(s.get(LeaderHeartbeat, 1), now))
        return out

    def _latency(self, conn: sa.Connection) -> Metric:
        ms = E.c.response_ms
        columns = [sa.func.count(), sa.func.coalesce(sa.func.sum(ms), 0)] + [
            sa.func.sum(sa.case((ms <= b * 1000, 1), else_=0)) for b in BUCKETS_S]
        rows = conn.execute(sa.select(E.c.channel, P.c.simulated, *columns).select_from(E.join(P, P.c.id == E.c.ping_id))
                            .where(E.c.kind == ev.PING_ACKED, ms.is_not(None)).group_by(E.c.channel, P.c.simulated))
        hist = HistogramMetricFamily("commtest_ack_latency_seconds",
                                     "Acknowledgement latency: the attempt's first contact to the answer.",
                                     labels=["channel", "simulated"])
        for channel, simulated, count, total, *within in rows:
            buckets = [(str(b), int(n or 0)) for b, n in zip(BUCKETS_S, within, strict=True)] + [("+Inf", int(count))]
            hist.add_metric([channel or "", "true" if simulated else "false"], buckets, sum_value=float(total) / 1000)
        return hist

    def _leader(self, beat: LeaderHeartbeat | None, now: object) -> list[Metric]:
        period = max(self.settings.heartbeat_seconds, self.settings.tick_seconds)
        age = (now - beat.beat_at).total_seconds() if beat is not None and beat.beat_at else None  # type: ignore[operator]
        up = GaugeMetricFamily("commtest_leader_up", "1 when a daemon leads (its heartbeat is fresh), else 0.")
        up.add_metric([], 1 if age is not None and age <= 3 * period else 0)
        out: list[Metric] = [up]
        if beat is None:
            return out
        aged = GaugeMetricFamily("commtest_leader_heartbeat_age_seconds", "Seconds since the leader's last heartbeat.")
        aged.add_metric([], max(0.0, age or 0.0))
        info = GaugeMetricFamily("commtest_leader_info", "The daemon that wrote the last heartbeat.", labels=["holder"])
        info.add_metric([beat.holder], 1)
        ticks = CounterMetricFamily("commtest_ticks", "Ticks run by the current leader since it took the lead.")
        ticks.add_metric([], beat.ticks)
        late = GaugeMetricFamily("commtest_tick_lateness_seconds", "How late the leader's latest tick started.")
        late.add_metric([], beat.tick_lateness_ms / 1000)
        worst = GaugeMetricFamily("commtest_tick_lateness_max_seconds",
                                  "The latest tick lateness's worst value over the last heartbeat period.")
        worst.add_metric([], beat.tick_lateness_max_ms / 1000)
        decided = GaugeMetricFamily("commtest_deadline_lateness_seconds",
                                    "How long after its deadline the latest deadline decision was written.")
        decided.add_metric([], beat.decision_lateness_ms / 1000)
        decided_worst = GaugeMetricFamily("commtest_deadline_lateness_max_seconds",
                                          "The worst deadline decision lateness over the last heartbeat period.")
        decided_worst.add_metric([], beat.decision_lateness_max_ms / 1000)
        retried = CounterMetricFamily("commtest_deadline_decision_retries",
                                      "Deadline decisions that lost a race (busy database, serialization failure) "
                                      "and were run again, since the leader took the lead.")
        retried.add_metric([], beat.decision_retries)
        return [*out, aged, info, ticks, late, worst, decided, decided_worst, retried]


def metrics_router(settings: Settings, engine: Engine, clock: Clock) -> APIRouter:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(engine, clock, settings))
    router = APIRouter()
    secret = settings.metrics_token.get_secret_value() if settings.metrics_token else ""

    @router.get("/metrics")
    def metrics(request: Request) -> Response:
        if secret:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {secret}".encode()):
                return Response("a bearer token is needed (COMMTEST_METRICS_TOKEN)\n", status_code=401,
                                media_type="text/plain", headers={"WWW-Authenticate": "Bearer"})
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
