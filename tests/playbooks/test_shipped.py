"""The shipped Benelux–NRW playbook loads and says what the 2021 practice did."""
from __future__ import annotations

from datetime import timedelta

import pytest

from commtest.settings import shipped_playbook_dir
from playbooks.store import load_file, load_folder
from playbooks.templates import render_message, sample_context

SHIPPED = shipped_playbook_dir() / "benelux-nrw-crisis-centres.yaml"
LANGUAGES = ["nl", "fr", "de", "lb", "en"]


def test_the_shipped_playbook_has_the_agreed_participants_steps_and_schedules() -> None:
    spec = load_file(SHIPPED).spec
    assert (spec.id, spec.owner, spec.timezone) == ("benelux-nrw-crisis-centres", "BNL-SG", "Europe/Brussels")
    assert [(p.organisation, p.fields) for p in spec.participants] == [
        ("BE-NCCN", ["crisis-desk"]), ("NL-NCC", ["crisis-desk"]),
        ("LU-CNC", ["crisis-desk"]), ("DE-NW-LZ", ["crisis-desk"]),
    ]
    email, voice, sms, video = (spec.step(s) for s in ("email", "voice", "sms", "video"))
    assert (email.ack_deadline, email.retries, email.retry_interval) == (timedelta(minutes=15), 1, timedelta(minutes=5))
    assert (voice.start_after, voice.ack_deadline, voice.retries, voice.retry_interval) == (
        timedelta(minutes=2), timedelta(minutes=5), 2, timedelta(minutes=2))
    assert voice.escalate is not None and voice.escalate.step == "sms"
    assert sms.ack_deadline == timedelta(minutes=10)
    assert (video.start_after, video.ack_deadline) == (timedelta(minutes=10), timedelta(minutes=20))
    assert [s.id for s in spec.initial_steps()] == ["email", "voice", "video"]  # sms only on escalation
    assert spec.targets == {"email": timedelta(minutes=15), "voice": timedelta(minutes=5),
                            "sms": timedelta(minutes=10), "video": timedelta(minutes=20)}
    assert [(s.key, s.months, s.announced) for s in spec.schedules] == [("spring", [4], False), ("autumn", [9], False)]
    for schedule in spec.schedules:
        assert schedule.window is not None
        assert schedule.window.days == ["mon", "tue", "wed", "thu", "fri"]
        assert (f"{schedule.window.start:%H:%M}", f"{schedule.window.end:%H:%M}") == ("09:00", "16:00")


def test_every_template_of_the_shipped_playbook_exists_in_five_languages() -> None:
    spec = load_file(SHIPPED).spec
    for name, languages in spec.templates.items():
        assert sorted(languages) == sorted(LANGUAGES), name


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_shipped_messages_render_in_every_language(language: str) -> None:
    spec = load_file(SHIPPED).spec
    context = sample_context(language)
    email = render_message(spec, "email-invite", language, context)
    assert email.language == language and email.subject and context.ack_url in email.body
    voice = render_message(spec, "voice-call", language, context)
    assert "1" in voice.body and "{{" not in voice.body
    sms = render_message(spec, "sms-code", language, context)
    assert context.ack_code in sms.body and len(sms.body) <= 160
    video = render_message(spec, "video-invite", language, context)
    assert context.ack_url in video.body


def test_the_shipped_folder_loads_without_problems() -> None:
    folder = load_folder(shipped_playbook_dir())
    assert folder.invalid == []
    assert "benelux-nrw-crisis-centres" in [p.spec.id for p in folder.valid]
