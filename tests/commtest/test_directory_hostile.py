"""Hostile directory files (issue 9): a located error and exit 2, never a traceback; nothing written."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from commtest.directory import import_directory, read_directory_file, validate
from commtest.errors import ValidationFailed
from commtest.limits import FileTooLarge
from commtest.yaml_input import MAX_DEPTH
from tests.commtest.test_directory_support import BASE_YAML, counts, write
from tests.hostile import CSV_FIELD_LIMIT, alias_bomb, csv_with_long_field, nested_brackets, write_big_file

MB = 1024 * 1024


def problems(path: Path, **kw: int) -> list[str]:
    with pytest.raises(ValidationFailed) as err:
        read_directory_file(path, **kw)
    return [str(p) for p in err.value.problems]


def test_a_csv_value_over_pythons_csv_limit_is_a_located_error_naming_the_column(tmp_path: Path) -> None:
    path = write(tmp_path, csv_with_long_field(), "directory.csv")
    assert problems(path) == [
        f"{path}:2: organisation_name: CSV cannot be read: a value longer than {CSV_FIELD_LIMIT:,} characters; "
        "close a quote left open, or shorten the value"
    ]


def test_a_quote_left_open_is_reported_where_its_row_starts(tmp_path: Path) -> None:
    text = csv_with_long_field(10).replace("BE-NCCN,", 'BE-NCCN,"', 1) + ("more text\n" * 20_000)
    path = write(tmp_path, text, "directory.csv")
    [problem] = problems(path)
    assert problem.startswith(f"{path}:2: organisation_name: CSV cannot be read: a value longer than 131,072 characters "
                              "(read up to line ")


def test_a_binary_file_is_refused_as_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "directory.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xd8")
    assert problems(path) == [f"{path}:1: not UTF-8 text (byte 0 cannot be decoded); "
                              "save the file as UTF-8 (in a spreadsheet: CSV UTF-8)"]


def test_a_utf8_file_with_nul_characters_is_refused_as_binary(tmp_path: Path) -> None:
    path = tmp_path / "directory.yaml"
    path.write_bytes(BASE_YAML.encode() + b"\x00\x00garbage")
    [problem] = problems(path)
    assert problem.endswith("the file holds NUL characters: it is a binary file, not YAML or CSV text")


def test_a_latin1_csv_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "directory.csv"
    path.write_bytes(csv_with_long_field(3).encode() + "BE-NCCN,Centre de crise nationalé\n".encode("latin-1"))
    [problem] = problems(path)
    assert problem.startswith(f"{path}:3: not UTF-8 text")


def test_an_alias_bomb_directory_is_refused_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, alias_bomb(head="fields_of_work: []\n"))
    start = time.monotonic()
    assert problems(path) == [f"{path}:3:10: YAML aliases (*a0) are not allowed in commtest files; write the value out in full"]
    assert time.monotonic() - start < 0.5


def test_a_hundred_thousand_nested_brackets_are_refused_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, nested_brackets(head="fields_of_work: []\n"))
    start = time.monotonic()
    [problem] = problems(path)
    assert time.monotonic() - start < 0.5
    assert problem.startswith(f"{path}:2:{4 + MAX_DEPTH}: nested more than {MAX_DEPTH} levels deep")


def test_a_control_character_in_yaml_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, BASE_YAML.replace("24/7 desk", "24/7 \x07desk"))
    assert problems(path) == [f"{path}:3:16: character U+0007 is not allowed in YAML text "
                              "(a binary file, or a control character pasted in?); remove it"]


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = write_big_file(tmp_path / "directory.yaml", 21 * MB, head="fields_of_work: []\n")
    start = time.monotonic()
    with pytest.raises(FileTooLarge) as err:
        read_directory_file(path)
    assert time.monotonic() - start < 0.5
    assert "a directory file may be at most 20 MiB" in str(err.value)
    assert "raise the limit with the setting max_directory_bytes (COMMTEST_MAX_DIRECTORY_BYTES)" in str(err.value)


def test_the_import_writes_nothing_for_a_hostile_file(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed):
        import_directory(engine, write(tmp_path, csv_with_long_field(), "directory.csv"))
    assert set(counts(engine).values()) == {0}


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("long.csv", csv_with_long_field()),
        ("bomb.yaml", alias_bomb(head="fields_of_work: []\n")),
        ("nest.yaml", nested_brackets(head="fields_of_work: []\n")),
    ],
)
def test_directory_import_exits_2_without_a_traceback(run_cli, tmp_path: Path, name: str, text: str) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, text, name)
    result = run_cli("directory", "import", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {path}:")
    assert "Traceback" not in result.stdout + result.stderr


def test_directory_import_reads_its_size_limit_from_the_settings(  # type: ignore[no-untyped-def]
    run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMMTEST_MAX_DIRECTORY_BYTES", "1024")
    path = write(tmp_path, BASE_YAML + "# padding\n" * 200)
    result = run_cli("directory", "import", str(path))
    assert result.exit_code == 2
    assert "a directory file may be at most 1 KiB" in result.stderr


@pytest.mark.parametrize("zone", ["Europe", "9" * 5000], ids=["a-folder-of-zones", "too-long-for-a-file-name"])
def test_a_time_zone_that_is_not_a_zone_file_is_a_located_problem(tmp_path: Path, zone: str) -> None:
    # Found by the fuzz tests: ZoneInfo("Europe") raises IsADirectoryError, not ZoneInfoNotFoundError.
    path = write(tmp_path, BASE_YAML.replace("timezone: Europe/Luxembourg", f"timezone: '{zone}'"))
    with pytest.raises(ValidationFailed) as err:
        validate(read_directory_file(path))
    [problem] = [str(p) for p in err.value.problems]
    assert problem.startswith(f"{path}:23: timezone: unknown time zone ")
    assert len(problem) < len(str(path)) + 200
