"""Fuzz the directory readers (YAML and CSV) and the validation behind them: the answer is
a validated directory or a ``ValidationFailed`` listing located problems; nothing else."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ruamel.yaml import YAML

from commtest.directory import CSV_COLUMNS, read_directory_file, validate
from commtest.directory.load import read_csv, read_yaml
from commtest.errors import ValidationFailed
from tests.commtest.test_directory_support import BASE_YAML
from tests.fuzz.strategies import SCALARS, mutated, nested

pytestmark = pytest.mark.fuzz

YAML_FIELDS = ["fields_of_work", "organisations", "code", "name", "names", "country", "languages", "timezone", "role",
               "notes", "contact_points", "field", "kind", "title", "active", "endpoints", "address", "priority",
               "label", "status", "verified_at", "nl", "fr", "de", "en"]
CSV_BASE = (
    ",".join(CSV_COLUMNS) + "\n"
    + "BE-NCCN,Nationaal Crisiscentrum,BE,nl;fr;de,Europe/Brussels,crisis-desk,24/7 desk,BE-NCCN/crisis-desk,"
    "Permanentie,desk,,nl;fr,true,email,permanence@nccn.example,1,,active,2026-03-17T09:15:00Z,participant,,"
    "nl=Permanentie; fr=Permanence,,\n"
    + ",,,,,crisis-desk,,BE-NCCN/crisis-desk,Permanentie,,,,,voice,+32 2 555 01 10,1,,,,,,,,\n"
)


def only_clear_errors(read: object) -> None:
    try:
        raw = read()  # type: ignore[operator]
        validate(raw)
    except ValidationFailed as exc:
        assert exc.problems
        for problem in exc.problems:
            assert str(problem).startswith("fuzz.")


@given(mutated(BASE_YAML))
def test_a_mutated_yaml_directory_is_validated_or_refused(text: str) -> None:
    only_clear_errors(lambda: read_yaml(text, "fuzz.yaml"))


@given(nested(YAML_FIELDS))
def test_any_yaml_data_as_a_directory_is_validated_or_refused(data: object) -> None:
    out = io.StringIO()
    YAML(typ="safe", pure=True).dump(data, out)
    only_clear_errors(lambda: read_yaml(out.getvalue(), "fuzz.yaml"))


@given(mutated(CSV_BASE))
def test_a_mutated_csv_directory_is_validated_or_refused(text: str) -> None:
    only_clear_errors(lambda: read_csv(text, "fuzz.csv"))


ROW = st.lists(SCALARS.map(lambda v: "" if v is None else str(v)) | st.text(max_size=20),
               min_size=len(CSV_COLUMNS) - 3, max_size=len(CSV_COLUMNS) + 1)


@given(st.lists(ROW, max_size=5), st.integers(0, 200_000))
def test_csv_rows_of_any_values_are_validated_or_refused(rows: list[list[str]], long: int) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(rows)
    text = out.getvalue()
    if rows and long > 131_000:  # now and then a value over Python's csv field limit
        text += "BE-NCCN," + "x" * long + "\n"
    only_clear_errors(lambda: read_csv(text, "fuzz.csv"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-directory")


@given(st.binary(max_size=600), st.sampled_from(["fuzz.yaml", "fuzz.csv"]))
def test_any_bytes_in_a_directory_file_are_refused_clearly(folder: Path, data: bytes, name: str) -> None:
    path = folder / name
    path.write_bytes(data)
    try:
        validate(read_directory_file(path, max_bytes=4096))
    except ValidationFailed as exc:
        assert exc.problems and all(p.file == str(path) for p in exc.problems)
