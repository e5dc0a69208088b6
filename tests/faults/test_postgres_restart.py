"""A PostgreSQL restart during a run, on a private cluster (never the machine's shared server).

A daemon leads on the private cluster and serves the acknowledgement pages; officers answer
through them while the run goes on; the cluster is restarted (``pg_ctl restart -m fast``:
every session ends at once, the leader's advisory-lock session too) mid-run, once as fast as
it goes and once staying down for a few seconds, as a restart on a busy host or a failover
does. The daemon must lose leadership, lead again and finish the run: nothing sent twice,
nothing answered lost, ``unknown`` only for what was in flight.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from channels.email.devserver import DevSmtpServer
from commtest.db import make_engine, upgrade
from tests.faults import figures
from tests.faults.invariants import Received, judge
from tests.faults.officers import Officers
from tests.faults.pg_cluster import PrivateCluster
from tests.faults.replicas import Daemons, wait_for
from tests.faults.world import MailReader, RunFeeder, has_playbook, shared_env, write_world
from tests.scheduler.seed import fast_playbook, seed_bulk

pytestmark = pytest.mark.faults

WORKERS = 4
RESTARTS = 2
DOWN_S = 4.0


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    c = PrivateCluster.create()
    try:
        c.start()
        admin = sa.create_engine(c.url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql('CREATE DATABASE "commtest"')
        admin.dispose()
        yield c
    finally:
        c.remove()


@pytest.mark.timeout(900)
def test_a_postgresql_restart_mid_run_loses_leadership_leads_again_and_finishes_the_run_sending_nothing_twice(
        tmp_path: Path, cluster: PrivateCluster, smtp_fake: DevSmtpServer) -> None:
    db_url = cluster.url_for("commtest")
    engine = make_engine(db_url)
    upgrade(engine)
    orgs = seed_bulk(engine, organisations=3, per_org=6)
    write_world(tmp_path, fast_playbook(orgs, deadline="4s"))
    daemons = Daemons(tmp_path, {}, slots=("a",))
    daemons.env.update(shared_env(tmp_path, db_url, smtp_fake, daemons.url("a"), workers=WORKERS))
    officers = Officers(smtp_fake.maildir, {"a": daemons.url("a")}, engine, figures.rng("pg-restart"),
                        soon=0.35, on_deadline=0.3, by_reply=0.2, reply_box=tmp_path / "Replies")
    reader = MailReader(db_url, tmp_path / "Replies")
    feeder = RunFeeder(engine, daemons.env, tmp_path, open_runs=1)
    try:
        daemon = daemons.start("a")
        daemons.wait_leader(90)
        wait_for(lambda: has_playbook(engine), 60, "the daemon to load the playbook", daemons.logs)
        officers.start()
        reader.start()
        feeder.start()
        releads: list[float] = []
        for n in range(RESTARTS):
            # Mid-run: once the run is sending (the first restart) or retrying (the second).
            target = officers.count() + daemons.sandbox_count() + 15 * (n + 1)
            wait_for(lambda target=target: officers.count() + daemons.sandbox_count() >= target, 120,
                     "the run to be sending", daemons.logs)
            losses = daemon.losses
            restarted_at = time.monotonic()
            if n == 0:
                cluster.restart()
            else:  # down for longer than the daemon takes to notice: it must wait, not give up
                cluster.stop_fast()
                # Answers arrive while the database is away: a reply to the mailbox reader.
                assert officers.reply_now() is not None
                time.sleep(DOWN_S)
                cluster.start()
            wait_for(lambda losses=losses: (daemons.tail(), daemon.losses > losses)[1], 60,
                     "the daemon to lose leadership", daemons.logs)
            _, led_at = daemons.wait_leader(120)
            releads.append(led_at - restarted_at)
            assert daemon.alive, daemons.logs()
        feeder.stop()
        wait_for(lambda: feeder.open_runs() == 0, 300, "the runs to complete", daemons.logs, poll=0.5)
        officers.stop_answering_new_mail()
        wait_for(officers.idle, 120, "the officers' last answers", poll=0.1)
        time.sleep(1.0)  # the reader's last poll
        reader.stop()
        codes = daemons.stop()
        officers.stop()
        assert list(codes.values()) == [0], f"the daemon did not stop cleanly: {codes}\n{daemons.logs()}"
        assert daemons.started == [daemon], "the daemon was started once and never died"

        received = [Received(m.ping_id, "email", "smtp") for m in officers.mails]
        received += [Received(int(e["ping_id"]), str(e["channel"]), "sandbox") for e in daemons.sandbox_sent()]  # type: ignore[call-overload]
        # The database went away under the one daemon: what it had claimed may be unknown, one batch per restart.
        verdict = judge(engine, received, officers.answers, died={daemon.pid}, dispatch_workers=WORKERS * RESTARTS,
                        allow_5xx=True)
        figures.add(pg_restarts=RESTARTS)
        figures.maximum(pg_relead_s_max=round(max(releads), 2))
        figures.note(pg_restart_attempts=verdict.figures["attempts"], pg_restart_acks_2xx=verdict.figures["acks_2xx"],
                     pg_restart_replies=verdict.figures["replies"], pg_restart_lost_acks=verdict.figures["lost_acks"],
                     pg_restart_duplicates=verdict.figures["duplicates"],
                     pg_restart_ack_pages_5xx=verdict.figures["ack_pages_5xx"])
        assert verdict.violations == [], "\n".join(verdict.violations)
        assert daemon.leaderships == RESTARTS + 1 and daemon.losses == RESTARTS
        assert verdict.figures["acks_2xx"] > 0 and verdict.figures["replies"] > 0
    finally:
        reader.stopping.set()
        feeder.stopping.set()
        officers.stopping.set()
        daemons.kill_all()
        engine.dispose()
