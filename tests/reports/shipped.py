"""A whole run of the shipped playbook (playbooks/benelux-nrw-crisis-centres.yaml) against the
sample directory (data/sample-directory.yaml), through the real run engine on a frozen clock,
with sandbox officers who answer the way real desks do: some quickly, one late, one never, an
answering machine, a mail scanner. What a reader of the demo's reports sees."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from channels.registry import ChannelSet
from channels.sandbox import SandboxChannel, SandboxRecord, SandboxScript
from commtest.clock import FrozenClock
from commtest.directory import import_directory
from commtest.settings import load_settings
from playbooks.store import sync_folder
from scheduler.engine import RunEngine

REPO = Path(__file__).resolve().parents[2]
SHIPPED = "benelux-nrw-crisis-centres"

OFFICERS = {
    "default": {"behaviour": "ack", "after": "90s", "by": "J. Peeters (fictional)"},
    "rules": [
        {"match": "permanence@nccn.example", "behaviour": "ack", "after": "3s"},  # a mail scanner clicks at once
        {"match": "permanence@cnc.example", "behaviour": "ack", "after": "18m"},  # late: the deadline is 15 minutes
        {"match": "*@im-nrw.example", "channel": "email", "behaviour": "never"},
        {"match": "+31*", "channel": "voice", "behaviour": "voicemail", "after": "20s"},  # then the retries, the SMS
        {"match": "*/lu-cnc", "channel": "video", "behaviour": "ack", "after": "25m"},
    ],
}


def run_the_shipped_playbook(engine: Engine, clock: FrozenClock) -> int:
    """Import the sample directory and the shipped playbooks, run the Benelux–NRW test to its
    end; returns the run's id."""
    import_directory(engine, REPO / "data" / "sample-directory.yaml")
    sync_folder(engine, REPO / "playbooks", clock)
    settings = load_settings(database_url=engine.url.render_as_string(hide_password=False), sandbox=True,
                             dispatch_workers=2)
    script = SandboxScript.from_data(OFFICERS)
    record = SandboxRecord()
    channels = {kind: SandboxChannel(kind, clock, script, record) for kind in ("email", "voice", "sms", "video")}
    runs = RunEngine(engine, settings, clock, ChannelSet(settings, clock, channels), actor="test")
    try:
        run_id = runs.create_run(SHIPPED)
        runs.start_run(run_id)
        for _ in range(400):
            runs.tick()
            if runs.is_settled(run_id):
                return run_id
            clock.advance(20)
        raise AssertionError(f"run {run_id} of {SHIPPED} did not close")
    finally:
        runs.close()
