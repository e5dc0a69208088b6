"""Importing a directory file: every problem with FILE:LINE: field, all or nothing."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from commtest.directory import import_directory
from commtest.errors import ValidationFailed

from .test_directory_support import BASE_YAML, counts, write

# (what to change in BASE_YAML, into what, line, field, part of the message)
BAD_ROWS = [
    ("'+32 2 555 01 10'", "'+32 2 555'", 17, "address", "'+32 2 555' is not a valid phone number for BE"),
    ("'+32 2 555 01 10'", "+3225550110", 17, "address", "put the phone number in quotes"),
    ("address: permanence@nccn.example", "address: permanence@@nccn.example", 16, "address",
     "'permanence@@nccn.example' is not a valid e-mail address"),
    ("kind: email, address: permanence@nccn.example", "kind: video, address: 'ftp://v.example/r'", 16, "address",
     "is not an http(s) URL or a SIP URI"),
    ("- field: crisis-desk", "- field: crisis-dsk", 12, "field", "unknown field of work 'crisis-dsk'; expected one of: crisis-desk"),
    ("code: LU-CNC", "code: BE-NCCN", 19, "code", "duplicate organisation code 'BE-NCCN' (first defined on line 6)"),
    ("code: LU-CNC", "code: lu-cnc", 19, "code", "'lu-cnc' is not an organisation code; expected uppercase letters"),
    ("{kind: sms, address: '+32 470 55 01 10',", "{kind: email, address: permanence@nccn.example,", 18, "address",
     "duplicate endpoint email permanence@nccn.example for contact point BE-NCCN/crisis-desk (first given on line 16)"),
    ("languages: [nl, fr, de]", "languages: [nl, fr, xx]", 9, "languages", "unknown language 'xx'"),
    ("timezone: Europe/Luxembourg", "timezone: Europe/Luxemburg", 23, "timezone", "unknown time zone 'Europe/Luxemburg'"),
    ("country: LU", "country: LUX", 21, "country", "unknown country 'LUX'"),
    ("{kind: sms,", "{kind: pager,", 18, "kind", "unknown endpoint kind 'pager'; expected one of: email, voice, sms"),
    ("priority: 1}", "priority: high}", 17, "priority", "'high' is not a priority; expected a whole number from 1"),
    ("priority: 1}", "priority: 0}", 17, "priority", "greater than or equal to 1"),
    ("'2026-03-17T09:15:00Z'", "'17/03/2026 09:15'", 18, "verified_at", "'17/03/2026 09:15' is not an ISO 8601 instant"),
    ("        name: Permanentie", "        kind: office\n        name: Permanentie", 13, "kind", "Input should be 'person' or 'desk' (got 'office')"),
    ("        name: Permanentie", "        nmae: Permanentie", 13, "nmae",
     "unknown key; expected one of: code, field, name, kind, title, languages, timezone, active, notes, endpoints"),
]


@pytest.mark.parametrize(("old", "new", "line", "field", "message"), BAD_ROWS, ids=[r[4][:40] for r in BAD_ROWS])
def test_a_bad_row_is_refused_with_its_line_and_field_and_nothing_is_written(
    engine: Engine, tmp_path: Path, old: str, new: str, line: int, field: str, message: str
) -> None:
    import_directory(engine, write(tmp_path, BASE_YAML, "base.yaml"))
    before = counts(engine)
    assert old in BASE_YAML
    path = write(tmp_path, BASE_YAML.replace(old, new, 1))
    with pytest.raises(ValidationFailed) as err:
        import_directory(engine, path, replace=True)
    rendered = [str(p) for p in err.value.problems]
    assert any(r.startswith(f"{path}:{line}: {field}: ") and message in r for r in rendered), rendered
    assert counts(engine) == before


def test_every_problem_is_listed_not_only_the_first(engine: Engine, tmp_path: Path) -> None:
    text = BASE_YAML.replace("[nl, fr, de]", "[nl, xx]").replace("'+32 2 555 01 10'", "'+32 9'").replace(
        "Europe/Luxembourg", "Mars/Olympus"
    )
    path = write(tmp_path, text)
    with pytest.raises(ValidationFailed) as err:
        import_directory(engine, path)
    assert [(p.line, p.field) for p in err.value.problems] == [(9, "languages"), (17, "address"), (23, "timezone")]
    assert err.value.render().endswith("3 problem(s) found; nothing was written")
    assert counts(engine) == {"organisation": 0, "field_of_work": 0, "contact_point": 0, "endpoint": 0}


def test_two_contact_points_with_the_same_default_code_are_refused(engine: Engine, tmp_path: Path) -> None:
    second = "      - field: crisis-desk\n        name: Second desk\n"
    path = write(tmp_path, BASE_YAML.replace("  - code: LU-CNC\n", second + "  - code: LU-CNC\n"))
    with pytest.raises(ValidationFailed) as err:
        import_directory(engine, path)
    assert [str(p) for p in err.value.problems] == [
        f"{path}:19: code: duplicate contact point code 'BE-NCCN/crisis-desk' (first defined on line 12); "
        "give each contact point its own code"
    ]


def test_a_yaml_syntax_error_names_line_and_column(engine: Engine, tmp_path: Path) -> None:
    # Line 9 opens a '[' it never closes; the parser only notices on line 10.
    path = write(tmp_path, BASE_YAML.replace("languages: [nl, fr, de]", "languages: [nl, fr, de"))
    with pytest.raises(ValidationFailed) as err:
        import_directory(engine, path)
    problem = err.value.problems[0]
    assert (problem.line, problem.column) == (9, 16)
    assert str(problem) == (
        f"{path}:9:16: YAML syntax error: flow sequence not closed: expected ',' or ']', but got ':' "
        "(noticed on line 10, column 13); check indentation and quoting"
    )


# (what to break in BASE_YAML, into what, the line and column of the mistake)
BROKEN_YAML = [
    ("timezone: Europe/Luxembourg", "timezone: [Europe/Luxembourg", 23, 15),  # unclosed '[' on the last line
    ("timezone: Europe/Luxembourg", "timezone: 'Europe/Luxembourg", 23, 15),  # unclosed quote
    ("    names: {nl: Permanentie, fr: Permanence}", "    names: {nl: Permanentie, fr: Permanence", 4, 12),
    ("    country: BE\n", "    country BE\n", 8, 5),  # a key without ':'
    ("    country: BE\n", "   country: BE\n", 8, 4),  # bad indentation: the parser's own mark is right
    ("    country: BE\n", "    country: BE\n    country: NL\n", 9, 5),  # duplicate key
]


@pytest.mark.parametrize(("old", "new", "line", "column"), BROKEN_YAML, ids=[r[1].strip()[:30] for r in BROKEN_YAML])
def test_a_yaml_syntax_error_points_at_the_broken_line(
    engine: Engine, tmp_path: Path, old: str, new: str, line: int, column: int
) -> None:
    assert old in BASE_YAML
    path = write(tmp_path, BASE_YAML.replace(old, new, 1))
    with pytest.raises(ValidationFailed) as err:
        import_directory(engine, path)
    problem = err.value.problems[0]
    assert (problem.line, problem.column) == (line, column), str(problem)
    assert "YAML syntax error" in str(problem)


def test_an_unknown_file_extension_is_refused(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path, BASE_YAML, "directory.txt")
    with pytest.raises(ValidationFailed, match=r"directory.txt: unknown file type '.txt'; expected a .yaml, .yml or .csv"):
        import_directory(engine, path)


def test_a_missing_file_is_reported(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="nothing.yaml: file not found"):
        import_directory(engine, tmp_path / "nothing.yaml")


def test_a_dry_run_counts_but_writes_nothing(engine: Engine, tmp_path: Path) -> None:
    summary = import_directory(engine, write(tmp_path, BASE_YAML), dry_run=True)
    assert summary.count("endpoints", "created") == 3
    assert summary.count("organisations", "created") == 2
    assert counts(engine)["endpoint"] == 0
    assert "dry run: nothing written" in summary.render()


def test_the_cli_refuses_a_bad_file_with_exit_2_and_the_problem_on_stderr(run_cli, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, BASE_YAML.replace("'+32 2 555 01 10'", "'+32 2 555'"))
    result = run_cli("directory", "import", str(path))
    assert result.exit_code == 2
    assert f"{path}:17: address: '+32 2 555' is not a valid phone number for BE" in result.stderr
    assert "1 problem(s) found; nothing was written" in result.stderr
    assert counts(engine)["endpoint"] == 0


def test_the_cli_prints_the_import_summary(run_cli, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("directory", "import", str(write(tmp_path, BASE_YAML)))
    assert result.exit_code == 0, result.stderr
    assert "endpoints: 3 created, 0 updated, 0 unchanged" in result.stdout
    assert counts(engine) == {"organisation": 2, "field_of_work": 1, "contact_point": 1, "endpoint": 3}


def test_the_shape_of_the_yaml_file_is_checked_with_lines(engine: Engine, tmp_path: Path) -> None:
    text = BASE_YAML.replace("    contact_points:\n", "    contact_points: none\n    ignored:\n", 1) + "organisation:\n"
    path = write(tmp_path, text)
    with pytest.raises(ValidationFailed) as err:
        import_directory(engine, path)
    assert [str(p) for p in err.value.problems] == [
        f"{path}:11: contact_points: expected a list (items starting with '- ')",
        f"{path}:12: ignored: unknown key; expected one of: code, name, names, country, languages, timezone, role, notes, "
        "contact_points",
        f"{path}:25: organisation: unknown key; expected organisations or fields_of_work",
    ]


def test_an_unquoted_yaml_timestamp_is_read_as_an_instant(engine: Engine, tmp_path: Path) -> None:
    summary = import_directory(engine, write(tmp_path, BASE_YAML.replace("'2026-03-17T09:15:00Z'", "2026-03-17T10:15:00+01:00")))
    assert summary.count("endpoints", "created") == 3
    from commtest.directory import export_directory

    assert "verified_at: '2026-03-17T09:15:00Z'" in export_directory(engine, "yaml")


# Every record of this file has a mistake; lines matter.
MANY_MISTAKES = """\
fields_of_work:
  - code: crisis-desk
    name: Desk
organisations:
  - code: XX-ONE
    name: One
    country: BE
    languages: [nl]
    timezone: Europe/Brusels
    contact_points:
      - code: XX-ONE/desk
        field: crisis-desk
        name: Desk
        languages: [klingon]
        endpoints:
          - {kind: voice, address: '02 555'}
          - {kind: fax, address: '123'}
          - {kind: email, address: desk@one.example}
          - {kind: email, address: DESK@one.example}
      - code: XX-ONE/desk
        field: no-such-field
        name: Desk 2
        endpoints:
          - {kind: sms, address: 'abc'}
  - code: XX-ONE
    name: One again
    country: BE
    languages: [nl]
    timezone: Europe/Brussels
    contact_points:
      - field: crisis-desk
        organisation: XX-NOPE
        name: Desk 3
"""


def test_every_field_of_every_record_is_checked_even_when_its_parent_has_errors(
    engine: Engine, tmp_path: Path
) -> None:
    path = write(tmp_path, MANY_MISTAKES)
    with pytest.raises(ValidationFailed) as err:
        import_directory(engine, path)
    assert [str(p).removeprefix(f"{path}:") for p in err.value.problems] == [
        "9: timezone: unknown time zone 'Europe/Brusels'; expected an IANA name such as Europe/Brussels",
        "14: languages: unknown language 'klingon'; expected a BCP 47 tag such as nl, fr, de, lb or en-GB",
        "16: address: '02 555' is not a valid phone number for BE; check the digits and the country prefix "
        "(e.g. +32 2 555 01 10)",
        "17: kind: unknown endpoint kind 'fax'; expected one of: email, voice, sms, video, cap, manual",
        "19: address: duplicate endpoint email DESK@one.example for contact point XX-ONE/desk (first given on line 18; "
        "e-mail addresses are compared without regard to case); remove one",
        "20: code: duplicate contact point code 'XX-ONE/desk' (first defined on line 11); give each contact point its "
        "own code",
        "21: field: unknown field of work 'no-such-field'; expected one of: crisis-desk",
        "24: address: cannot read 'abc' as a phone number (The string supplied did not seem to be a phone number.); "
        "write it as +32 2 555 01 10",
        "25: code: duplicate organisation code 'XX-ONE' (first defined on line 5)",
        "32: organisation: unknown key; a contact point belongs to the organisation it is listed under",
    ]
    assert counts(engine)["endpoint"] == 0


CSV_HEADER = (
    "organisation_code,organisation_name,country,organisation_languages,organisation_timezone,field,field_name,"
    "contact_point_code,contact_point_name,contact_point_kind,title,languages,active,endpoint_kind,address,"
    "priority,label,status,verified_at\n"
)


def test_a_csv_row_whose_contact_point_is_wrong_still_has_its_endpoint_checked(engine: Engine, tmp_path: Path) -> None:
    import_directory(engine, write(tmp_path, BASE_YAML, "base.yaml"))
    text = CSV_HEADER + "BE-NCCN,,,,,crisis-desk,,BE-NCCN/y,Y,person,,zz,maybe,email,foo@,1,,weird,2026-13-01\n"
    path = write(tmp_path, text, "bad.csv")
    with pytest.raises(ValidationFailed) as err:
        import_directory(engine, path)
    assert [(p.line, p.field) for p in err.value.problems] == [
        (2, "languages"), (2, "active"), (2, "address"), (2, "status"), (2, "verified_at")
    ]
