"""Small playbooks written by the tests, and helpers to see their problems as text."""
from __future__ import annotations

from pathlib import Path

import pytest

from commtest.errors import ValidationFailed
from playbooks.store import load_file

# Line numbers matter: the tests assert exact FILE:LINE:COL positions in this text.
VALID = """\
id: drill
title: Drill
owner: BNL-SG
participants:
  - organisation: BE-NCCN
    fields: [crisis-desk]
steps:
  - id: mail
    channel: email
    template: invite
    ack_deadline: 15m
  - id: call
    channel: voice
    template: call
    ack_deadline: 5m
    escalate: {step: mail}
templates:
  invite:
    en:
      subject: "Test by {{ sender }}"
      body: |
        Hello {{ organisation.name }},
        please confirm: {{ ack_url }}
  call:
    en:
      body: "Press 1 to confirm, {{ organisation.name }}."
schedules:
  - key: spring
    months: [april]
    window: {days: mon-fri, start: "09:00", end: "16:00"}
"""


def problems_of(folder: Path, text: str, name: str = "drill.yaml") -> list[str]:
    """Write ``text`` as ``name`` in ``folder`` and return its problems as strings (none if valid)."""
    path = folder / name
    path.write_text(text, encoding="utf-8")
    try:
        load_file(path)
    except ValidationFailed as exc:
        return [str(p) for p in exc.problems]
    return []


@pytest.fixture
def pb_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    return folder
