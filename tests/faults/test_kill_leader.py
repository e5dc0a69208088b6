"""kill -9 of the leader at random points, on two replicas, while officers answer.

Two ``commtest daemon`` processes share one database (SQLite, and PostgreSQL when
``COMMTEST_TEST_POSTGRES_URL`` is set), each serving the web app on its own loopback port.
E-mail goes through a real SMTP server run by this test process (``DevSmtpServer``: it keeps
every message it was handed); voice and SMS go to the sandbox, which appends every message
to an fsynced JSON-lines file per process. New runs are queued with ``commtest run … --now
--no-wait`` as old ones complete, so a run is always in flight. Officers answer the e-mails
through the acknowledgement pages of either replica, some exactly on their deadline; some
reply to the e-mail instead, read by the mail reader (in this process, a replica never killed).

The leader is killed with SIGKILL at random moments (after a random delay, or right after a
fake received a message, when a provider call is most likely in flight) and started again
at once in its slot, so two always compete; the standby takes over. Afterwards the fakes'
logs and the database are held to ``tests.faults.invariants``.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from channels.email.devserver import DevSmtpServer
from commtest.db import make_engine
from tests.faults import figures
from tests.faults.invariants import Received, failover_figures, judge
from tests.faults.officers import Officers
from tests.faults.replicas import Daemons, wait_for
from tests.faults.world import MailReader, RunFeeder, has_playbook, shared_env, write_world
from tests.scheduler.seed import fast_playbook, seed_bulk

pytestmark = pytest.mark.faults

# Kills per database (COMMTEST_FAULTS_KILLS): 52 on SQLite and 52 on PostgreSQL make the 104 of the RESULT line.
KILLS = int(os.environ.get("COMMTEST_FAULTS_KILLS", "52"))
WORKERS = 4
DEADLINE_S = 3


@pytest.mark.timeout(1500)
def test_kill_9_of_the_leader_at_random_points_never_sends_twice_and_loses_no_answer(
        tmp_path: Path, db_url: str, smtp_fake: DevSmtpServer) -> None:
    backend = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    rng = figures.rng(f"kill-{backend}")
    engine = make_engine(db_url)
    orgs = seed_bulk(engine, organisations=4, per_org=6)
    write_world(tmp_path, fast_playbook(orgs, deadline=f"{DEADLINE_S}s"))
    daemons = Daemons(tmp_path, {})
    daemons.env.update(shared_env(tmp_path, db_url, smtp_fake, daemons.url("a"), workers=WORKERS))
    officers = Officers(smtp_fake.maildir, {s: daemons.url(s) for s in daemons.slots}, engine, rng,
                        soon=0.4, on_deadline=0.35, by_reply=0.1, reply_box=tmp_path / "Replies")
    reader = MailReader(db_url, tmp_path / "Replies")  # the reply mailbox's reader, on a replica never killed
    feeder = RunFeeder(engine, daemons.env, tmp_path, open_runs=2)  # a run always in flight
    try:
        first = daemons.start("a")
        daemons.wait_leader(90)
        daemons.wait_standby(daemons.start("b"))
        wait_for(lambda: has_playbook(engine), 60, "the leader to load the playbook", daemons.logs)
        officers.start()
        reader.start()
        feeder.start()
        wait_for(lambda: officers.count() + daemons.sandbox_count() >= 10, 90, "the first messages", daemons.logs)
        assert first.alive

        failovers: list[float] = []
        for _ in range(KILLS):
            leader, _ = daemons.wait_leader(60)
            if rng.random() < 0.5:
                time.sleep(rng.uniform(0.0, 2.5))  # anywhere: a tick, an expiry, a run closing, an answer
            else:  # right after a fake was handed a message: most likely with another call in flight
                seen = officers.count() + daemons.sandbox_count()
                try:
                    wait_for(lambda seen=seen: officers.count() + daemons.sandbox_count() > seen, 6, "a message",
                             poll=0.005)
                except AssertionError:
                    pass  # nothing due right now: kill wherever the leader is
                time.sleep(rng.uniform(0.0, 0.03))
            if daemons.leader() is not leader:
                leader, _ = daemons.wait_leader(60)
            kill = daemons.kill_leader(leader)
            restarted = daemons.start(leader.slot)
            _, led_at = daemons.wait_leader(60, other_than=leader.pid)
            kill.failover_s = led_at - kill.at
            failovers.append(kill.failover_s)
            daemons.wait_standby(restarted)

        feeder.stop()
        assert feeder.failures == []
        wait_for(lambda: feeder.open_runs() == 0, 300, "every run to complete", daemons.logs, poll=0.5)
        officers.stop_answering_new_mail()
        wait_for(officers.idle, 120, "the officers' last answers", poll=0.1)
        time.sleep(1.0)  # the reader's last poll
        reader.stop()
        codes = daemons.stop()
        officers.stop()
        assert all(code == 0 for code in codes.values()), f"replicas did not stop cleanly: {codes}\n{daemons.logs()}"

        received = [Received(m.ping_id, "email", "smtp") for m in officers.mails]
        received += [Received(int(e["ping_id"]), str(e["channel"]), "sandbox") for e in daemons.sandbox_sent()]  # type: ignore[call-overload]
        lost = daemons.lost_leadership()
        verdict = judge(engine, received, officers.answers, died={k.pid for k in daemons.kills} | lost,
                        dispatch_workers=WORKERS)
        figures.add(kills=len(daemons.kills), leadership_lost=len(lost), **verdict.figures)
        failover = failover_figures(failovers)
        if failovers:
            figures.maximum(failover_s_max=failover["failover_s_max"])
        figures.note(**{f"failover_s_max_{backend}": failover.get("failover_s_max", "-"),
                        f"failover_s_median_{backend}": failover.get("failover_s_median", "-")})
        problems = daemons.problems()
        assert verdict.violations == [], "\n".join(verdict.violations)
        assert problems == [], "errors in the daemons' logs:\n" + "\n".join(problems[:40])
        assert len(daemons.kills) == KILLS
        assert verdict.figures["acks_2xx"] > 0 and verdict.figures["acks_on_deadline"] > 0
    finally:
        reader.stopping.set()
        feeder.stopping.set()
        officers.stopping.set()
        daemons.kill_all()
        engine.dispose()
