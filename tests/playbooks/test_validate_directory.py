"""``playbook validate`` renders every template for every contact point of the directory
(issue 9, point 2): a misspelt variable in a branch the sample values never reach fails
validation, not a ping at send time."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from commtest.db import make_engine, session_scope
from commtest.models import ContactPoint, FieldOfWork, Organisation
from tests.scheduler.seed import seed_directory

# Line numbers matter: the tests assert exact FILE:LINE:COL positions in this text.
PLAYBOOK = """\
id: branches
title: Branches
owner: XA-COORD
default_language: en
participants:
  - organisation: XA-ONE
    fields: [crisis-desk]
  - organisation: XB-TWO
    fields: [crisis-desk]
steps:
  - id: mail
    channel: email
    template: ping
    ack_deadline: 15m
templates:
  ping:
    en:
      subject: "Test {{ run.id }}"
      body: "Confirm: {{ ack_url }}"
    nl:
      subject: "Test {{ run.id }}"
      body: "Bevestig: {{ ack_url }}"
    de:
      subject: "Test {{ run.id }}"
      body: |
        Bestätigen: {{ ack_url }}
        {% if organisation.code == "XB-TWO" %}Gruß an {{ organisaton.name }}{% endif %}
"""


@pytest.fixture
def engine_for_cli(cli_env: dict[str, str]) -> Engine:
    return make_engine(cli_env["COMMTEST_DATABASE_URL"])


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "branches.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_misspelt_variable_in_a_branch_only_a_real_contact_point_reaches_fails_validation(  # type: ignore[no-untyped-def]
    run_cli, engine_for_cli: Engine, tmp_path: Path
) -> None:
    seed_directory(engine_for_cli)
    path = write(tmp_path, PLAYBOOK)
    assert run_cli("playbook", "validate", "--no-directory", str(path)).exit_code == 0  # the sample values miss it
    result = run_cli("playbook", "validate", str(path))
    assert result.exit_code == 2
    assert result.stdout.splitlines() == [
        f"{path}:27:9: templates.ping.de.body: template uses an undefined variable: 'organisaton' is undefined; "
        "available: organisation, contact, playbook, run, channel, language, ack_url, ack_code, deadline, "
        "deadline_minutes, test_kind, sender, test_at (rendered for contact point XB-TWO/crisis-desk, language de)"
    ]
    assert "invalid playbook(s)" in result.stderr


def test_a_clean_playbook_passes_against_the_directory(run_cli, engine_for_cli: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seed_directory(engine_for_cli)
    path = write(tmp_path, PLAYBOOK.replace("organisaton", "organisation"))
    result = run_cli("playbook", "validate", str(path))
    assert result.exit_code == 0, result.stdout
    assert result.stdout.startswith("OK branches ")
    assert result.stderr == ""


def test_an_empty_directory_is_said_instead_of_pretending(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, PLAYBOOK)
    result = run_cli("playbook", "validate", str(path))
    assert result.exit_code == 0
    assert result.stdout.startswith("OK branches ")
    assert result.stderr == ("note: cannot check templates against the directory: it is empty; "
                             "import one with `commtest directory import`\n")


def test_a_participant_without_a_contact_point_is_noted(run_cli, engine_for_cli: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seed_directory(engine_for_cli)
    text = PLAYBOOK.replace("organisaton", "organisation").replace(
        "  - organisation: XB-TWO\n", "  - organisation: XC-GONE\n    fields: [crisis-desk]\n  - organisation: XB-TWO\n")
    result = run_cli("playbook", "validate", str(write(tmp_path, text)))
    assert result.exit_code == 0
    assert "no active contact point in the directory for XC-GONE/crisis-desk" in result.stderr


def test_the_language_falls_back_as_at_send_time_and_the_error_names_both(  # type: ignore[no-untyped-def]
    run_cli, engine_for_cli: Engine, tmp_path: Path
) -> None:
    seed_directory(engine_for_cli)
    # No Dutch text: XA-ONE (nl) gets the English one, whose branch is reached for it only.
    text = PLAYBOOK.replace("organisaton", "organisation").replace(
        '      body: "Confirm: {{ ack_url }}"\n',
        '      body: "Confirm: {{ ack_url }}{% if language == \'nl\' %} {{ ack_cdoe }}{% endif %}"\n')
    text = text.replace('    nl:\n      subject: "Test {{ run.id }}"\n      body: "Bevestig: {{ ack_url }}"\n', "")
    path = write(tmp_path, text)
    result = run_cli("playbook", "validate", str(path))
    assert result.exit_code == 2
    [line] = result.stdout.splitlines()
    assert line.startswith(f"{path}:19:13: templates.ping.en.body: template uses an undefined variable: 'ack_cdoe'")
    assert line.endswith("(rendered for contact point XA-ONE/crisis-desk, language nl)")


def test_an_escalation_to_another_field_reaches_that_fields_contact_points(  # type: ignore[no-untyped-def]
    run_cli, engine_for_cli: Engine, tmp_path: Path
) -> None:
    seed_directory(engine_for_cli)
    with session_scope(engine_for_cli) as s:
        planning = FieldOfWork(code="emergency-planning", name="Emergency planning")
        s.add(planning)
        s.flush()
        org = s.exec(Organisation.__table__.select().where(Organisation.code == "XA-ONE")).first()  # type: ignore[attr-defined]
        s.add(ContactPoint(code="XA-ONE/emergency-planning", organisation_id=org.id, field_id=planning.id,
                           name="Planning office", languages=["en"]))
    text = PLAYBOOK.replace("organisaton", "organisation").replace(
        "    ack_deadline: 15m\n",
        "    ack_deadline: 15m\n    escalate: {field: emergency-planning}\n").replace(
        '      body: "Confirm: {{ ack_url }}"\n',
        '      body: "Confirm: {{ ack_url }}{% if contact.field == \'emergency-planning\' %}{{ contact.nmae }}{% endif %}"\n')
    result = run_cli("playbook", "validate", str(write(tmp_path, text)))
    assert result.exit_code == 2
    assert "(rendered for contact point XA-ONE/emergency-planning, language en)" in result.stdout


def test_announcement_templates_and_announced_runs_are_rendered_too(  # type: ignore[no-untyped-def]
    run_cli, engine_for_cli: Engine, tmp_path: Path
) -> None:
    seed_directory(engine_for_cli)
    text = PLAYBOOK.replace("organisaton", "organisation") + """\
  announcement:
    en:
      subject: "Test on {{ test_at }}"
      body: "{% if test_kind == 'announced' %}{{ test_att }}{% endif %}"
schedules:
  - key: spring
    cron: "0 10 1 4 *"
    announced: true
    announce_before: 1d
"""
    result = run_cli("playbook", "validate", str(write(tmp_path, text)))
    assert result.exit_code == 2
    [line] = result.stdout.splitlines()
    assert "templates.announcement.en.body: template uses an undefined variable: 'test_att' is undefined" in line
    assert "other contact point(s)" in line  # reported once, not once per contact point


def test_a_template_over_a_render_limit_for_the_directory_is_reported_once(  # type: ignore[no-untyped-def]
    run_cli, engine_for_cli: Engine, tmp_path: Path
) -> None:
    seed_directory(engine_for_cli)
    text = PLAYBOOK.replace("organisaton", "organisation").replace(
        '      body: "Bevestig: {{ ack_url }}"\n',
        '      body: "{% if language == \'nl\' %}{{ \'x\' * 1000000000 }}{% endif %}"\n')
    result = run_cli("playbook", "validate", str(write(tmp_path, text)))
    assert result.exit_code == 2
    [line] = result.stdout.splitlines()
    assert "templates.ping.nl.body: template exceeds a render limit: the repeated value would be" in line
