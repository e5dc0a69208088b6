"""Every problem in a playbook file is reported as FILE:LINE:COL: field: message."""
from __future__ import annotations

from pathlib import Path

from playbooks.loader import parse_playbook
from tests.playbooks.conftest import VALID, problems_of


def _where(folder: Path) -> str:
    return str(folder / "drill.yaml")


def test_the_small_valid_playbook_has_no_problems(pb_dir: Path) -> None:
    assert problems_of(pb_dir, VALID) == []
    spec = parse_playbook(VALID, "drill.yaml")
    assert [s.id for s in spec.steps] == ["mail", "call"]


def test_a_yaml_syntax_error_is_reported_with_its_line_and_column(pb_dir: Path) -> None:
    text = VALID.replace("    channel: voice\n", "    channel: [voice\n")
    problems = problems_of(pb_dir, text)
    assert len(problems) == 1
    assert problems[0].startswith(f"{_where(pb_dir)}:14:13: YAML syntax error: ")
    assert problems[0].endswith("; fix the YAML here")


def test_an_unknown_channel_names_the_channels_that_exist(pb_dir: Path) -> None:
    problems = problems_of(pb_dir, VALID.replace("channel: voice", "channel: pigeon"))
    assert problems == [
        f"{_where(pb_dir)}:13:14: steps[1].channel: unknown channel 'pigeon'; "
        "expected one of email, voice, sms, video, cap, manual"
    ]


def test_an_unknown_channel_in_targets_points_at_the_key(pb_dir: Path) -> None:
    problems = problems_of(pb_dir, VALID + "targets:\n  pigeon: 5m\n")
    assert problems == [
        f"{_where(pb_dir)}:32:3: targets.pigeon: unknown channel 'pigeon'; "
        "expected one of email, voice, sms, video, cap, manual"
    ]


def test_a_template_with_an_undefined_variable_points_at_its_line_inside_the_block(pb_dir: Path) -> None:
    problems = problems_of(pb_dir, VALID.replace("{{ ack_url }}", "{{ ack_link }}"))
    assert len(problems) == 1
    assert problems[0].startswith(
        f"{_where(pb_dir)}:23:9: templates.invite.en.body: template uses an undefined variable: "
        "'ack_link' is undefined; available: organisation, contact, playbook, run, channel,"
    )


def test_a_misspelt_attribute_in_a_one_line_template_points_at_the_value(pb_dir: Path) -> None:
    problems = problems_of(pb_dir, VALID.replace("to confirm, {{ organisation.name }}", "{{ organisation.nam }}"))
    assert len(problems) == 1
    assert problems[0].startswith(f"{_where(pb_dir)}:26:13: templates.call.en.body: template uses an undefined")
    assert "has no attribute 'nam'" in problems[0]


def test_a_template_syntax_error_points_at_its_line(pb_dir: Path) -> None:
    problems = problems_of(pb_dir, VALID.replace("please confirm: {{ ack_url }}", "please confirm: {{ ack_url }"))
    assert problems == [f"{_where(pb_dir)}:23:9: templates.invite.en.body: template syntax error: unexpected '}}'"]


def test_a_cron_for_the_30th_of_february_never_fires(pb_dir: Path) -> None:
    text = VALID.replace("    months: [april]\n    window: {days: mon-fri, start: \"09:00\", end: \"16:00\"}\n",
                         "    cron: \"0 10 30 2 *\"\n")
    problems = problems_of(pb_dir, text)
    assert problems == [
        f"{_where(pb_dir)}:29:11: schedules[0].cron: this schedule never fires: "
        "'0 10 30 2 *' matches no moment in 10 years"
    ]


def test_a_cron_window_without_a_common_day_is_an_impossible_schedule_at_window_days(pb_dir: Path) -> None:
    text = VALID.replace(
        "    months: [april]\n    window: {days: mon-fri, start: \"09:00\", end: \"16:00\"}\n",
        "    cron: \"0 10 * 4 mon-fri\"\n    window: {days: [sat, sun], start: \"09:00\", end: \"16:00\"}\n",
    )
    problems = problems_of(pb_dir, text)
    assert problems == [
        f"{_where(pb_dir)}:30:14: schedules[0].window.days: impossible schedule, it never fires: "
        "a test day must be a cron day and a window day, but cron '0 10 * 4 mon-fri' picks only "
        "mon, tue, wed, thu, fri and window.days only sat, sun; change the cron's weekday field or window.days"
    ]


def test_a_cron_with_month_13_is_refused_with_apschedulers_reason(pb_dir: Path) -> None:
    text = VALID.replace("    months: [april]\n", "    cron: \"0 10 * 13 *\"\n")
    problems = problems_of(pb_dir, text)
    assert problems == [
        f"{_where(pb_dir)}:29:11: schedules[0].cron: invalid cron expression '0 10 * 13 *': "
        "Error validating expression '13': the last value (13) is higher than the maximum value (12); "
        "expected five fields: minute hour day month weekday, e.g. '0 10 * 4 tue'"
    ]


def test_month_13_in_a_months_list_points_at_the_item(pb_dir: Path) -> None:
    problems = problems_of(pb_dir, VALID.replace("months: [april]", "months: [april, 13]"))
    assert problems == [
        f"{_where(pb_dir)}:29:21: schedules[0].months[1]: month 13 does not exist; expected 1..12 or a month name"
    ]


def test_a_window_that_ends_before_it_starts_points_at_its_end(pb_dir: Path) -> None:
    problems = problems_of(pb_dir, VALID.replace('start: "09:00", end: "16:00"', 'start: "16:00", end: "09:00"'))
    assert problems == [
        f"{_where(pb_dir)}:30:50: schedules[0].window.end: window end 09:00 must be after its start 16:00"
    ]


def test_a_deadline_that_is_not_a_duration_is_refused(pb_dir: Path) -> None:
    problems = problems_of(pb_dir, VALID.replace("ack_deadline: 15m", "ack_deadline: soon"))
    assert problems == [
        f"{_where(pb_dir)}:11:19: steps[0].ack_deadline: expected a duration such as 15m, 2h or PT15M, got 'soon'"
    ]


def test_a_deadline_without_a_unit_is_refused_with_its_position(pb_dir: Path) -> None:
    # 15 would otherwise be 15 seconds: every answer late.
    problems = problems_of(pb_dir, VALID.replace("ack_deadline: 15m", "ack_deadline: 15"))
    assert problems == [
        f"{_where(pb_dir)}:11:19: steps[0].ack_deadline: 15 has no unit: write 15m (minutes), 15s or PT15M"
    ]


_CALL_EN = '      body: "Press 1 to confirm, {{ organisation.name }}."\n'


def test_a_template_language_that_is_not_a_bcp47_tag_points_at_its_key(pb_dir: Path) -> None:
    problems = problems_of(pb_dir, VALID.replace(_CALL_EN, _CALL_EN + "    klingon:\n      body: \"Qapla'\"\n"))
    assert problems == [
        f"{_where(pb_dir)}:27:5: templates.call.klingon: 'klingon' is not a language tag; "
        "write a BCP 47 tag such as en, nl, fr, de, lb or nl-BE"
    ]


def test_template_languages_that_are_bcp47_tags_validate_luxembourgish_included(pb_dir: Path) -> None:
    extra = "    lb:\n      body: \"Dréckt 1\"\n    nl-BE:\n      body: \"Druk 1\"\n"
    assert problems_of(pb_dir, VALID.replace(_CALL_EN, _CALL_EN + extra)) == []


def test_a_duplicate_step_id_is_refused_with_its_line(pb_dir: Path) -> None:
    problems = problems_of(pb_dir, VALID.replace("  - id: call\n", "  - id: mail\n").replace("{step: mail}", "{field: cyber}"))
    assert problems == [f"{_where(pb_dir)}:12:9: steps[1].id: duplicate step id 'mail'; steps[0] already uses it"]


def test_an_unknown_escalation_target_names_the_steps_that_exist(pb_dir: Path) -> None:
    problems = problems_of(pb_dir, VALID.replace("{step: mail}", "{step: sms}"))
    assert problems == [
        f"{_where(pb_dir)}:16:22: steps[1].escalate.step: step 'call' escalates to unknown step 'sms'; "
        "expected one of mail, call"
    ]


def test_a_template_without_the_default_language_points_at_the_template(pb_dir: Path) -> None:
    problems = problems_of(pb_dir, VALID.replace("  call:\n    en:\n", "  call:\n    nl:\n"))
    assert problems == [
        f"{_where(pb_dir)}:24:3: templates.call: template 'call' has no text in the default language 'en'; "
        "add an entry for 'en'"
    ]


def test_an_email_template_without_a_subject_is_refused(pb_dir: Path) -> None:
    problems = problems_of(pb_dir, VALID.replace('      subject: "Test by {{ sender }}"\n', ""))
    assert problems == [
        f"{_where(pb_dir)}:19:5: templates.invite.en.subject: "
        "step 'mail' sends e-mail with this template, so it needs a subject"
    ]


def test_a_missing_field_points_at_the_mapping_that_lacks_it(pb_dir: Path) -> None:
    problems = problems_of(pb_dir, VALID.replace("    template: call\n", ""))
    assert problems == [f"{_where(pb_dir)}:12:5: steps[1].template: required field is missing; add 'template:' here"]


def test_a_misspelt_field_gets_a_suggestion(pb_dir: Path) -> None:
    problems = problems_of(pb_dir, VALID.replace("    channel: voice\n", "    chanel: voice\n"))
    assert f"{_where(pb_dir)}:13:5: steps[1].chanel: unknown field 'chanel'; did you mean 'channel'?" in problems
    assert f"{_where(pb_dir)}:12:5: steps[1].channel: required field is missing; add 'channel:' here" in problems


def test_every_problem_of_a_file_is_reported_at_once_in_line_order(pb_dir: Path) -> None:
    text = (
        VALID.replace("ack_deadline: 15m", "ack_deadline: soon")
        .replace("channel: voice", "channel: pigeon")
        .replace("{step: mail}", "{step: sms}")
        .replace("{{ ack_url }}", "{{ ack_link }}")
        .replace("months: [april]", "months: [13]")
    )
    problems = problems_of(pb_dir, text)
    lines = [int(p.split(":")[1]) for p in problems]
    assert lines == [11, 13, 16, 23, 29]


def test_a_file_that_is_not_a_mapping_is_refused(pb_dir: Path) -> None:
    assert problems_of(pb_dir, "- just\n- a list\n") == [
        f"{_where(pb_dir)}:1:1: a playbook is a YAML mapping (id:, title:, steps: ...); this file is not"
    ]


def test_a_duplicate_yaml_key_is_a_syntax_error_with_position(pb_dir: Path) -> None:
    problems = problems_of(pb_dir, VALID.replace("title: Drill\n", "title: Drill\ntitle: Again\n"))
    assert len(problems) == 1
    assert problems[0].startswith(f"{_where(pb_dir)}:3:1: YAML syntax error: ")
    assert 'found duplicate key "title"' in problems[0]
