"""A step that names ``organisations`` pings only theirs: the others get no attempt, no gap and
no "no endpoint" verdict on its channel."""
from __future__ import annotations

from sqlalchemy.engine import Engine

from channels.sandbox import Rule
from commtest.clock import FrozenClock
from commtest.db import session_scope
from scheduler.summary import run_summary
from tests.scheduler.seed import PLAYBOOK, seed_directory, store_playbook
from tests.scheduler.test_engine import make_engine, pings, run_until

# XA-ONE alone has a CAP link; the SMS step is limited to XB-TWO and starts by itself.
LIMITED = PLAYBOOK.replace("""    escalate: {step: sms}
  - id: sms
    channel: sms
    template: ping
    ack_deadline: 10m
""", """  - id: sms
    channel: sms
    template: ping
    ack_deadline: 10m
    organisations: [XB-TWO]
""")


def test_a_step_limited_to_one_organisation_pings_only_its_contact_points(engine: Engine, clock: FrozenClock) -> None:
    assert "organisations: [XB-TWO]" in LIMITED
    seed_directory(engine)
    store_playbook(engine, LIMITED)
    eng, _ = make_engine(engine, clock, default=Rule("ack"))
    run_id = eng.create_run("test-playbook", started_by="tester")
    eng.start_run(run_id)
    run_until(eng, clock, run_id)
    got = sorted((p.organisation_code, p.channel) for p in pings(engine, run_id))
    assert got == [("XA-ONE", "email"), ("XA-ONE", "voice"), ("XB-TWO", "email"), ("XB-TWO", "sms"),
                   ("XB-TWO", "voice")]
    with session_scope(engine) as s:
        rows = {(r.organisation_code, r.channel): r.verdict for r in run_summary(s, run_id).rows}
    assert ("XA-ONE", "sms") not in rows and rows[("XB-TWO", "sms")] == "pass"
    assert [e for e in eng_events(engine, run_id) if e == "run.gap"] == []
    eng.close()


def eng_events(engine: Engine, run_id: int) -> list[str]:
    from sqlmodel import select

    from commtest.models import Event

    with session_scope(engine) as s:
        return [e.kind for e in s.exec(select(Event).where(Event.run_id == run_id)).all()]
