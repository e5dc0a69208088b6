"""Shared set-up for the benchmarks: a fresh database with N fictional contact points."""
from __future__ import annotations

import hashlib
import shutil
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commtest.db import make_engine, upgrade
from commtest.models import ContactPoint, Endpoint, FieldOfWork, Organisation, Playbook, PlaybookRevision

ORGS = 10


def fresh_engine(url: str | None, workdir: Path) -> Engine:
    if url is None:
        if workdir.exists():
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True)
        url = f"sqlite:///{workdir / 'bench.db'}"
    else:
        url = bench_database(url)
        eng = make_engine(url)
        with eng.begin() as c:
            c.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        eng.dispose()
    engine = make_engine(url)
    upgrade(engine)
    return engine


BENCH_DATABASE = "commtest_bench"


def bench_database(url: str) -> str:
    """The benchmarks' own database on the server ``url`` names (created when missing): they
    empty it before each run, so they never touch the database the URL itself names."""
    server = sa.engine.make_url(url.replace("postgresql://", "postgresql+psycopg://", 1))
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        if c.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": BENCH_DATABASE}).first() is None:
            c.exec_driver_sql(f'CREATE DATABASE "{BENCH_DATABASE}"')
    admin.dispose()
    return server.set(database=BENCH_DATABASE).render_as_string(hide_password=False)


def playbook(deadline: str = "15m", escalate: bool = False) -> str:
    participants = "\n".join(f"  - organisation: XB-{o:02d}\n    fields: [crisis-desk]" for o in range(ORGS))
    esc = "\n    escalate: {step: sms2}" if escalate else ""
    extra = """
  - id: sms2
    channel: sms
    template: ping
    ack_deadline: 1m""" if escalate else ""
    return f"""
id: bench
title: Benchmark
owner: XB-00
timezone: Europe/Brussels
participants:
{participants}
steps:
  - id: email
    channel: email
    template: ping
    ack_deadline: {deadline}
  - id: voice
    channel: voice
    template: ping
    ack_deadline: {deadline}{esc}
  - id: sms
    channel: sms
    template: ping
    ack_deadline: {deadline}{extra}
templates:
  ping:
    en:
      subject: "Communication test {{{{ run.id }}}}"
      body: "Please confirm: {{{{ ack_url }}}} (code {{{{ ack_code }}}}) before {{{{ deadline }}}}."
"""


def seed(engine: Engine, contact_points: int, playbook_text: str) -> None:
    """``contact_points`` spread over 10 organisations, each with e-mail, voice and SMS."""
    with engine.begin() as c:
        c.execute(sa.insert(FieldOfWork), [{"code": "crisis-desk", "name": "Crisis desk", "names": {}}])
        fid = c.execute(sa.select(FieldOfWork.id)).scalar_one()
        c.execute(sa.insert(Organisation), [
            {"code": f"XB-{o:02d}", "name": f"Bench centre {o}", "country": "BE", "languages": ["en"],
             "timezone": "Europe/Brussels", "role": "participant", "notes": ""} for o in range(ORGS)])
        orgs = dict(c.execute(sa.select(Organisation.code, Organisation.id)).all())
        c.execute(sa.insert(ContactPoint), [
            {"code": f"XB-{i % ORGS:02d}/desk-{i}", "organisation_id": orgs[f"XB-{i % ORGS:02d}"], "field_id": fid,
             "name": f"Desk {i}", "kind": "desk", "title": "", "languages": ["en"], "active": True, "notes": ""}
            for i in range(contact_points)])
        cps = c.execute(sa.select(ContactPoint.id)).scalars().all()
        rows = []
        for n, cp in enumerate(cps):
            rows.append({"contact_point_id": cp, "kind": "email", "address": f"desk{n}@bench.example"})
            rows.append({"contact_point_id": cp, "kind": "voice", "address": f"+3225{n:06d}"})
            rows.append({"contact_point_id": cp, "kind": "sms", "address": f"+32470{n:06d}"})
        c.execute(sa.insert(Endpoint), [dict(r, priority=1, label="", status="active") for r in rows])
        c.execute(sa.insert(Playbook), [{"id": "bench", "source_path": ""}])
        c.execute(sa.insert(PlaybookRevision), [{
            "playbook_id": "bench", "content_hash": hashlib.sha256(playbook_text.encode()).hexdigest(),
            "title": "Benchmark", "owner": "XB-00", "source_path": "", "source_text": playbook_text,
            "created_at": datetime.now(timezone.utc)}])
        rid = c.execute(sa.select(PlaybookRevision.id)).scalar_one()
        c.execute(sa.update(Playbook).values(current_revision_id=rid))


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(-(-p * len(ordered) // 100)) - 1))
    return ordered[k]
