from __future__ import annotations

import pytest

from commtest.errors import ValidationFailed
from playbooks.loader import parse_playbook
from tests.scheduler.seed import PLAYBOOK

ANNOUNCED = """schedules:
  - key: monthly
    cron: "0 10 20 * *"
    announced: true
    announce_before: 2d
"""


def test_an_announced_schedule_without_its_announcement_template_is_refused_with_what_to_add() -> None:
    with pytest.raises(ValidationFailed) as err:
        parse_playbook(PLAYBOOK + ANNOUNCED, "announce.yaml")
    text = str(err.value)
    assert "schedules[0].announce_before" in text
    assert "template 'announcement', which is not defined; add a template 'announcement'" in text


def test_an_announcement_template_may_use_the_moment_of_the_test() -> None:
    text = PLAYBOOK.replace("templates:\n", 'templates:\n  announcement:\n    en:\n      subject: "Test on {{ test_at }}"\n'
                            '      body: "{{ sender }} tests {{ organisation.name }} on {{ test_at }}."\n', 1) + ANNOUNCED
    spec = parse_playbook(text, "announce.yaml")
    assert spec.schedules[0].announce_template == "announcement"
