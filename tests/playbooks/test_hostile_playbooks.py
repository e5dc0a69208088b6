"""Hostile playbook files (issue 9): each is refused quickly, with a located error, never a
hang or a traceback, and a folder holding one still syncs its good files."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from commtest.clock import FrozenClock
from commtest.db import session_scope
from commtest.errors import ValidationFailed
from commtest.limits import FileTooLarge, format_size
from commtest.models import Playbook
from commtest.yaml_input import MAX_DEPTH
from playbooks.store import load_file, sync_folder
from tests.hostile import (
    NESTED_LOOPS_SILENT,
    NESTED_RANGES,
    alias_bomb,
    nested_brackets,
    playbook_with_template,
    write_big_file,
)
from tests.playbooks.conftest import VALID, problems_of

MB = 1024 * 1024


def refused(path: Path, **kw: int) -> tuple[list[str], float]:
    start = time.monotonic()
    with pytest.raises(ValidationFailed) as err:
        load_file(path, **kw)
    return [str(p) for p in err.value.problems], time.monotonic() - start


def test_a_billion_laughs_alias_bomb_is_refused_in_well_under_a_second_at_its_first_alias(pb_dir: Path) -> None:
    path = pb_dir / "bomb.yaml"
    path.write_text(alias_bomb(), encoding="utf-8")
    problems, took = refused(path)
    assert took < 0.5
    assert problems == [f"{path}:4:10: YAML aliases (*a0) are not allowed in commtest files; write the value out in full"]


def test_a_hundred_thousand_nested_brackets_give_a_located_error_not_a_recursion_error(pb_dir: Path) -> None:
    path = pb_dir / "nest.yaml"
    path.write_text(nested_brackets(100_000), encoding="utf-8")
    problems, took = refused(path)
    assert took < 0.5
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:3:{4 + MAX_DEPTH}: nested more than {MAX_DEPTH} levels deep")


def test_deep_block_nesting_is_refused_too(pb_dir: Path) -> None:
    text = "id: deep\n" + "".join(" " * i + f"k{i}:\n" for i in range(100)) + " " * 100 + "x: 1\n"
    assert any(f"nested more than {MAX_DEPTH} levels deep" in p for p in problems_of(pb_dir, text))


def test_a_second_yaml_document_is_refused_where_it_starts(pb_dir: Path) -> None:
    problems = problems_of(pb_dir, VALID + "---\nid: other\n")
    assert problems == [f"{pb_dir / 'drill.yaml'}:31:1: a second YAML document ('---') starts here; "
                        "a commtest file holds exactly one: remove it, or put it in a file of its own"]


def test_a_value_python_cannot_build_is_a_located_error(pb_dir: Path) -> None:
    problems = problems_of(pb_dir, VALID.replace("title: Drill", "title: " + "9" * 5000))
    assert len(problems) == 1
    assert problems[0].startswith(f"{pb_dir / 'drill.yaml'}:2:8: this value cannot be read: Exceeds the limit (4300 digits)")
    assert "sys.set_int_max_str_digits" not in problems[0]


def test_a_50_mb_playbook_is_refused_by_its_size_before_it_is_parsed(pb_dir: Path) -> None:
    path = write_big_file(pb_dir / "big.yaml", 50 * MB)
    start = time.monotonic()
    with pytest.raises(FileTooLarge) as err:
        load_file(path)
    assert time.monotonic() - start < 0.5  # parsing 50 MB of YAML takes minutes
    assert str(err.value.problems[0]) == (
        f"{path}: a playbook file may be at most 1 MiB and this one is {path.stat().st_size:,} bytes "
        f"({format_size(path.stat().st_size)}); "
        "it was not read; split it, or raise the limit with the setting max_playbook_bytes (COMMTEST_MAX_PLAYBOOK_BYTES)"
    )


def test_the_size_limit_is_the_setting_given(pb_dir: Path) -> None:
    path = pb_dir / "drill.yaml"
    path.write_text(VALID, encoding="utf-8")
    assert load_file(path, max_bytes=len(VALID)).spec.id == "drill"
    with pytest.raises(FileTooLarge, match=f"may be at most {len(VALID) - 1:,} bytes"):
        load_file(path, max_bytes=len(VALID) - 1)


def test_a_50_mb_template_body_is_refused_by_the_size_limit(pb_dir: Path) -> None:
    path = pb_dir / "drill.yaml"
    path.write_text(playbook_with_template("Hello " * (50 * MB // 6)), encoding="utf-8")
    problems, took = refused(path)
    assert took < 0.5
    assert "a playbook file may be at most 1 MiB" in problems[0]


def test_a_template_longer_than_any_message_may_be_is_refused_before_it_is_compiled(pb_dir: Path) -> None:
    problems = problems_of(pb_dir, playbook_with_template("x" * 300_000))
    assert problems == [f"{pb_dir / 'drill.yaml'}:21:13: templates.invite.en.body: template exceeds a render limit: "
                        "the template is 300,000 characters long; the limit is 262,144 characters; simplify it"]


def test_nested_range_100000_loops_fail_validation_at_once_naming_the_template_language_and_limit(pb_dir: Path) -> None:
    start = time.monotonic()
    problems = problems_of(pb_dir, playbook_with_template(NESTED_RANGES))
    assert time.monotonic() - start < 1
    assert problems == [f"{pb_dir / 'drill.yaml'}:21:13: templates.invite.en.body: template exceeds a render limit: "
                        "range() of 100,000 numbers was asked for; the limit is 10,000; simplify it"]


def test_loops_that_print_nothing_are_stopped_by_the_time_budget(pb_dir: Path) -> None:
    start = time.monotonic()
    problems = problems_of(pb_dir, playbook_with_template(NESTED_LOOPS_SILENT))
    assert time.monotonic() - start < 3
    assert problems == [f"{pb_dir / 'drill.yaml'}:21:13: templates.invite.en.body: template exceeds a render limit: "
                        "rendering took too long (a loop that runs too often?); the limit is 1 s per template text; "
                        "simplify it"]


def test_a_template_with_a_huge_output_fails_validation(pb_dir: Path) -> None:
    problems = problems_of(pb_dir, playbook_with_template("{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}"))
    assert problems == [f"{pb_dir / 'drill.yaml'}:21:13: templates.invite.en.body: template exceeds a render limit: "
                        "the rendered text is too long; the limit is 262,144 characters; simplify it"]


def test_a_folder_with_hostile_files_syncs_its_good_one_and_records_the_errors(
    engine: Engine, pb_dir: Path, clock: FrozenClock
) -> None:
    (pb_dir / "drill.yaml").write_text(VALID, encoding="utf-8")
    (pb_dir / "bomb.yaml").write_text(alias_bomb(), encoding="utf-8")
    (pb_dir / "nest.yaml").write_text(nested_brackets(), encoding="utf-8")
    write_big_file(pb_dir / "big.yaml", 2 * MB)
    (pb_dir / "loops.yaml").write_text(playbook_with_template(NESTED_RANGES).replace("id: drill", "id: loops"))
    start = time.monotonic()
    report = sync_folder(engine, pb_dir, clock)
    assert time.monotonic() - start < 2
    assert [p.spec.id for p in report.valid] == ["drill"]
    assert sorted(path.name for path, _ in report.invalid) == ["big.yaml", "bomb.yaml", "loops.yaml", "nest.yaml"]
    with session_scope(engine) as s:
        rows = {pb.id: pb for pb in s.exec(select(Playbook)).all()}
        assert rows["drill"].current_revision_id is not None and rows["drill"].last_error is None
        # Even a file too large or too hostile to parse is reported on its playbook (its id line is enough).
        assert "YAML aliases (*a0) are not allowed" in rows["bomb"].last_error
        assert "nested more than" in rows["nest"].last_error
        assert "a playbook file may be at most 1 MiB" in rows["big"].last_error
        assert "range() of 100,000 numbers" in rows["loops"].last_error
        assert rows["loops"].current_revision_id is None


def test_a_hostile_edit_keeps_the_last_good_revision_in_use(engine: Engine, pb_dir: Path, clock: FrozenClock) -> None:
    path = pb_dir / "drill.yaml"
    path.write_text(VALID, encoding="utf-8")
    sync_folder(engine, pb_dir, clock)
    with session_scope(engine) as s:
        good = s.get(Playbook, "drill").current_revision_id
    path.write_text(alias_bomb(head="id: drill\ntitle: Drill\n"), encoding="utf-8")
    report = sync_folder(engine, pb_dir, clock)
    assert report.errors_recorded == ["drill"]
    with session_scope(engine) as s:
        row = s.get(Playbook, "drill")
        assert row.current_revision_id == good
        assert "YAML aliases" in row.last_error


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("bomb.yaml", lambda p: p.write_text(alias_bomb())),
        ("nest.yaml", lambda p: p.write_text(nested_brackets())),
        ("big.yaml", lambda p: write_big_file(p, 50 * MB)),
        ("loops.yaml", lambda p: p.write_text(playbook_with_template(NESTED_RANGES))),
        ("binary.yaml", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")),
    ],
)
def test_validate_refuses_each_hostile_file_with_exit_2_and_no_traceback(run_cli, pb_dir: Path, name: str, make) -> None:  # type: ignore[no-untyped-def]
    path = pb_dir / name
    make(path)
    start = time.monotonic()
    result = run_cli("playbook", "validate", "--no-directory", str(path))
    assert time.monotonic() - start < 3
    assert result.exit_code == 2
    assert result.stdout.startswith(f"{path}")
    assert "Traceback" not in result.stdout + result.stderr
    assert "invalid playbook(s): fix the problems above; nothing was loaded" in result.stderr


def test_a_time_zone_that_is_a_folder_of_zones_is_a_located_problem(pb_dir: Path) -> None:
    problems = problems_of(pb_dir, VALID.replace("owner: BNL-SG\n", "owner: BNL-SG\ntimezone: Europe\n"))
    assert problems == [f"{pb_dir / 'drill.yaml'}:4:11: timezone: unknown IANA time zone 'Europe' (e.g. Europe/Brussels)"]


@pytest.mark.parametrize("tag", ["!!set", "!!omap", "!!binary", "!!python/object:os.system", "!custom"])
def test_explicit_yaml_tags_are_refused_where_they_stand(pb_dir: Path, tag: str) -> None:
    # Found by the fuzz tests: "!!set x" made ruamel.yaml raise AttributeError.
    problems = problems_of(pb_dir, VALID.replace("title: Drill", f"title: {tag} Drill"))
    assert problems == [f"{pb_dir / 'drill.yaml'}:2:8: YAML tags ({tag}) are not used in commtest files; "
                        "remove the tag and write the plain value"]


def test_a_refusal_by_the_time_budget_is_not_remembered_but_others_are(pb_dir: Path) -> None:
    from playbooks import store

    slow, bomb = pb_dir / "slow.yaml", pb_dir / "bomb.yaml"
    slow.write_text(playbook_with_template(NESTED_LOOPS_SILENT), encoding="utf-8")
    bomb.write_text(alias_bomb(), encoding="utf-8")
    for path in (slow, bomb):
        with pytest.raises(ValidationFailed):
            load_file(path)
    remembered = {name for name, _ in store._verdicts}
    assert str(bomb) in remembered and str(slow) not in remembered
