"""A step may ping only some of the participants (``organisations:``): the CAP link that only one
centre has, without a "no endpoint" for every other centre."""
from __future__ import annotations

from pathlib import Path

from playbooks.loader import parse_playbook
from tests.playbooks.conftest import VALID, problems_of

TWO = VALID.replace("participants:\n", "participants:\n  - organisation: NL-NCC\n    fields: [crisis-desk]\n", 1)
LINK = TWO.replace("templates:\n", """  - id: link
    channel: cap
    template: call
    ack_deadline: 10m
    organisations: [NL-NCC]
templates:
""", 1)


def test_a_step_limited_to_one_organisation_pings_only_that_one(pb_dir: Path) -> None:
    assert problems_of(pb_dir, LINK) == []
    spec = parse_playbook(LINK, "drill.yaml")
    link = spec.step("link")
    assert link.pings("NL-NCC") and not link.pings("BE-NCCN")
    assert spec.step("mail").pings("BE-NCCN") and spec.step("mail").pings("NL-NCC")  # unlimited: everyone
    assert sorted(spec.fact_rules().needed) == [
        ("BE-NCCN", "voice"), ("NL-NCC", "cap"), ("NL-NCC", "voice")]  # mail starts only on escalation


def test_an_organisation_that_is_not_a_participant_is_refused_where_it_is_named(pb_dir: Path) -> None:
    problems = problems_of(pb_dir, LINK.replace("organisations: [NL-NCC]", "organisations: [NL-NCC, LU-CNC]"))
    assert problems == [
        f"{pb_dir / 'drill.yaml'}:23:29: steps[2].organisations[1]: step 'link' names LU-CNC, which is not a "
        "participant of this playbook (participants: NL-NCC, BE-NCCN)"
    ]


def test_a_step_limited_to_some_organisations_cannot_be_escalated_to(pb_dir: Path) -> None:
    problems = problems_of(pb_dir, LINK.replace("    escalate: {step: mail}\n", "    escalate: {step: link}\n"))
    assert problems == [
        f"{pb_dir / 'drill.yaml'}:23:5: steps[2].organisations: step 'link' pings only some organisations, but step "
        "'call' escalates to it, for whichever organisation did not answer; start it by itself (no step escalating "
        "to it), or leave organisations out"
    ]


def test_an_empty_list_of_organisations_is_refused(pb_dir: Path) -> None:
    [problem] = problems_of(pb_dir, LINK.replace("organisations: [NL-NCC]", "organisations: []"))
    assert "steps[2].organisations" in problem


def test_directory_check_asks_only_the_named_organisations_for_the_steps_channel(pb_dir: Path) -> None:
    from commtest.cli.directory_cmd import playbook_requirements

    (pb_dir / "drill.yaml").write_text(LINK, encoding="utf-8")
    requirements, note = playbook_requirements(pb_dir)
    assert note == ""
    channels = {r.organisation_code: r.channels for r in requirements}
    assert channels == {"BE-NCCN": frozenset({"email", "voice"}), "NL-NCC": frozenset({"email", "voice", "cap"})}
