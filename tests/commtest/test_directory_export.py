"""Export then import gives back exactly the same directory (YAML and CSV), and CSV problems have lines."""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from commtest.db import make_engine, session_scope
from commtest.directory import export_directory, import_directory, snapshot
from commtest.errors import ValidationFailed

from .test_directory_support import SAMPLE, counts, write


@pytest.fixture
def fresh_engine(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> Iterator[Engine]:
    """A second empty database of the same kind as ``engine``."""
    if db_url.startswith("sqlite"):
        path = tmp_path / "second.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_templates").fresh()
    eng = make_engine(url)
    yield eng
    eng.dispose()


def _snap(engine: Engine) -> dict:  # type: ignore[type-arg]
    with session_scope(engine) as s:
        return snapshot(s)


@pytest.mark.parametrize("fmt", ["yaml", "csv"])
def test_export_then_import_into_a_fresh_database_gives_the_same_directory(
    engine: Engine, fresh_engine: Engine, tmp_path: Path, fmt: str
) -> None:
    import_directory(engine, SAMPLE)
    first = export_directory(engine, fmt)  # type: ignore[arg-type]
    import_directory(fresh_engine, write(tmp_path, first, f"export.{fmt}"))
    assert export_directory(fresh_engine, fmt) == first  # type: ignore[arg-type]
    assert _snap(fresh_engine) == _snap(engine)
    assert counts(fresh_engine) == counts(engine) == {
        "organisation": 5, "field_of_work": 10, "contact_point": 40, "endpoint": 82,
    }  # fmt: skip


def test_the_sample_is_fictional_and_has_every_crisis_desk(engine: Engine) -> None:
    assert "FICTIONAL" in SAMPLE.read_text(encoding="utf-8").split("fields_of_work:")[0]
    import_directory(engine, SAMPLE)
    snap = _snap(engine)
    codes = {c["code"] for o in snap["organisations"] for c in o["contact_points"]}
    for org in ("BE-NCCN", "NL-NCC", "LU-CNC", "DE-NW-LZ"):
        assert f"{org}/crisis-desk" in codes
    addresses = [e["address"] for o in snap["organisations"] for c in o["contact_points"] for e in c["endpoints"]]
    assert all(a.endswith(".example") for a in addresses if "@" in a)
    assert [o["code"] for o in snap["organisations"] if o["role"] == "coordinator"] == ["BNL-SG"]


def test_a_csv_with_a_bad_row_is_refused_with_its_physical_line(engine: Engine, tmp_path: Path) -> None:
    import_directory(engine, SAMPLE)
    lines = export_directory(engine, "csv").splitlines(keepends=True)
    voice = next(i for i, line in enumerate(lines) if ",voice,+3225550110," in line)  # BE-NCCN's 24/7 line
    sms = next(i for i, line in enumerate(lines) if ",sms,+32470550110," in line)
    lines[voice] = lines[voice].replace("+3225550110", "+32 2 555")
    lines[sms] = lines[sms].replace(",sms,", ",pager,")
    path = write(tmp_path, "".join(lines), "bad.csv")
    before = counts(engine)
    with pytest.raises(ValidationFailed) as err:
        import_directory(engine, path, replace=True)
    assert [str(p) for p in err.value.problems] == sorted([
        f"{path}:{voice + 1}: address: '+32 2 555' is not a valid phone number for BE; check the digits and the "
        "country prefix (e.g. +32 2 555 01 10)",
        f"{path}:{sms + 1}: endpoint_kind: unknown endpoint kind 'pager'; expected one of: email, voice, sms, video, "
        "cap, manual",
    ], key=lambda text: int(text.split(":")[1]))
    assert counts(engine) == before


CSV_HEAD = (
    "organisation_code,organisation_name,country,organisation_languages,organisation_timezone,field,field_name,"
    "contact_point_code,contact_point_name,contact_point_kind,title,languages,active,endpoint_kind,address,"
    "priority,label,status,verified_at\n"
)


def test_a_csv_row_naming_an_undefined_organisation_is_refused(engine: Engine, tmp_path: Path) -> None:
    text = CSV_HEAD + (
        "BE-NCCN,Nationaal Crisiscentrum,BE,nl;fr,Europe/Brussels,crisis-desk,24/7 desk,,Permanentie,desk,,nl,true,"
        "email,permanence@nccn.example,1,,,\n"
        "XX-NEW,,,,,crisis-desk,,,Someone,person,,nl,true,email,someone@new.example,1,,,\n"
    )
    path = write(tmp_path, text, "new.csv")
    with pytest.raises(ValidationFailed) as err:
        import_directory(engine, path)
    assert [str(p) for p in err.value.problems] == [
        f"{path}:3: organisation_code: unknown organisation 'XX-NEW'; define it (with its name, country, languages "
        "and time zone) on this or another row"
    ]


def test_csv_rows_that_disagree_about_an_organisation_are_refused(engine: Engine, tmp_path: Path) -> None:
    row = "BE-NCCN,Nationaal Crisiscentrum,BE,nl;fr,{tz},crisis-desk,24/7 desk,,Permanentie,desk,,nl,true,{ep},1,,,\n"
    text = CSV_HEAD + row.format(tz="Europe/Brussels", ep="email,permanence@nccn.example") + row.format(
        tz="Europe/Paris", ep="voice,+32 2 555 01 10"
    )
    path = write(tmp_path, text, "disagree.csv")
    with pytest.raises(ValidationFailed) as err:
        import_directory(engine, path)
    assert [str(p) for p in err.value.problems] == [
        f"{path}:3: organisation_timezone: 'Europe/Paris' differs from 'Europe/Brussels' given for organisation "
        "BE-NCCN on line 2; repeat the same value on every row (or give it another code)"
    ]


def test_a_csv_with_a_missing_column_is_refused(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path, CSV_HEAD.replace(",verified_at", ""), "short.csv")
    with pytest.raises(ValidationFailed, match=r"short.csv:1: missing column\(s\) verified_at"):
        import_directory(engine, path)


def test_the_cli_exports_to_a_file_and_to_stdout(run_cli, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import_directory(engine, SAMPLE)
    out = tmp_path / "out.csv"
    assert run_cli("directory", "export", "--format", "csv", "-o", str(out)).exit_code == 0
    assert out.read_text(encoding="utf-8") == export_directory(engine, "csv")
    result = run_cli("directory", "export")
    assert result.exit_code == 0
    assert result.stdout == export_directory(engine, "yaml")
    assert "code: BE-NCCN/crisis-desk" in result.stdout


def test_csv_line_numbers_count_physical_lines_inside_quoted_cells(engine: Engine, tmp_path: Path) -> None:
    head = CSV_HEAD.rstrip("\n") + ",organisation_notes\n"
    text = head + (
        'BE-NCCN,Nationaal Crisiscentrum,BE,nl,Europe/Brussels,crisis-desk,24/7 desk,,Permanentie,desk,,nl,true,'
        'email,permanence@nccn.example,1,,,,"first line\nsecond line"\n'
        "BE-NCCN,,,,,crisis-desk,,,Permanentie,desk,,nl,true,voice,+32 2 555,1,,,,\n"
    )
    path = write(tmp_path, text, "notes.csv")
    with pytest.raises(ValidationFailed) as err:
        import_directory(engine, path)
    assert [(p.line, p.field) for p in err.value.problems] == [(4, "address")]
