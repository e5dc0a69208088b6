"""Revisions are immutable and keyed by content hash; a broken file never replaces a good one."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from commtest.clock import UTC, FrozenClock
from commtest.db import session_scope
from commtest.errors import NotFoundError
from commtest.models import Playbook, PlaybookRevision, Schedule, TestRun
from playbooks.store import current_revision, find_revision, get_revision, load_folder, sync_folder
from tests.playbooks.conftest import VALID

AUTUMN = '  - key: autumn\n    months: [september]\n    window: {days: mon-fri, start: "09:00", end: "16:00"}\n'


def _write(folder: Path, text: str, name: str = "drill.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _revisions(engine: Engine) -> list[PlaybookRevision]:
    with session_scope(engine) as session:
        return list(session.exec(select(PlaybookRevision).order_by(PlaybookRevision.id)).all())  # type: ignore[arg-type]


def _schedules(engine: Engine) -> dict[str, Schedule]:
    with session_scope(engine) as session:
        return {s.key: s for s in session.exec(select(Schedule)).all()}


def test_a_valid_playbook_is_stored_once_however_often_it_is_synced(
    engine: Engine, pb_dir: Path, clock: FrozenClock
) -> None:
    _write(pb_dir, VALID)
    first = sync_folder(engine, pb_dir, clock)
    clock.advance(minutes=5)
    second = sync_folder(engine, pb_dir, clock)
    assert len(first.new_revisions) == 1 and second.new_revisions == []
    revisions = _revisions(engine)
    assert len(revisions) == 1
    with session_scope(engine) as session:
        playbook = session.get(Playbook, "drill")
        assert playbook is not None
        assert playbook.current_revision_id == revisions[0].id
        assert playbook.last_seen_at == clock.now()
        revision, spec = current_revision(session, "drill")
    assert revision.content_hash == first.new_revisions[0][1]
    assert (revision.title, revision.owner, spec.id) == ("Drill", "BNL-SG", "drill")
    assert list(_schedules(engine)) == ["spring"]


def test_an_edited_file_becomes_a_second_revision_and_its_schedules_follow(
    engine: Engine, pb_dir: Path, clock: FrozenClock
) -> None:
    _write(pb_dir, VALID)
    sync_folder(engine, pb_dir, clock)
    _write(pb_dir, VALID.replace("title: Drill", "title: Drill two") + AUTUMN)
    report = sync_folder(engine, pb_dir, clock)
    revisions = _revisions(engine)
    assert len(revisions) == 2 and len(report.new_revisions) == 1
    with session_scope(engine) as session:
        revision, spec = current_revision(session, "drill")
        old, old_spec = get_revision(session, revisions[0].id or 0)
    assert revision.id == revisions[1].id and spec.title == "Drill two"
    assert old_spec.title == "Drill"
    schedules = _schedules(engine)
    assert sorted(schedules) == ["autumn", "spring"]
    assert {s.revision_id for s in schedules.values()} == {revision.id}


def test_a_broken_file_records_its_error_and_keeps_the_current_revision(
    engine: Engine, pb_dir: Path, clock: FrozenClock
) -> None:
    _write(pb_dir, VALID)
    sync_folder(engine, pb_dir, clock)
    good = _revisions(engine)[0]
    _write(pb_dir, VALID.replace("channel: voice", "channel: pigeon"))
    report = sync_folder(engine, pb_dir, clock)
    assert report.errors_recorded == ["drill"] and len(report.invalid) == 1
    with session_scope(engine) as session:
        playbook = session.get(Playbook, "drill")
        assert playbook is not None
        assert playbook.current_revision_id == good.id
        assert playbook.last_error is not None and "unknown channel 'pigeon'" in playbook.last_error
        revision, _ = current_revision(session, "drill")
    assert revision.id == good.id
    assert len(_revisions(engine)) == 1
    _write(pb_dir, VALID)  # fixed again: the error goes away, still one revision
    sync_folder(engine, pb_dir, clock)
    with session_scope(engine) as session:
        playbook = session.get(Playbook, "drill")
        assert playbook is not None and playbook.last_error is None
    assert len(_revisions(engine)) == 1


def test_a_playbook_that_never_loaded_says_why_it_has_no_revision(
    engine: Engine, pb_dir: Path, clock: FrozenClock
) -> None:
    _write(pb_dir, VALID.replace("ack_deadline: 15m", "ack_deadline: soon"))
    sync_folder(engine, pb_dir, clock)
    with session_scope(engine) as session, pytest.raises(NotFoundError) as failed:
        current_revision(session, "drill")
    assert str(failed.value).startswith("playbook 'drill' has no valid revision yet: ")
    assert "steps[0].ack_deadline: expected a duration" in str(failed.value)


def test_an_unknown_playbook_names_the_known_ones(engine: Engine, pb_dir: Path, clock: FrozenClock) -> None:
    _write(pb_dir, VALID)
    sync_folder(engine, pb_dir, clock)
    with session_scope(engine) as session, pytest.raises(NotFoundError) as failed:
        current_revision(session, "drll")
    assert str(failed.value) == "no playbook 'drll' (known: drill); check the id in `commtest playbook list`"


def test_a_revision_is_found_by_the_start_of_its_hash(engine: Engine, pb_dir: Path, clock: FrozenClock) -> None:
    _write(pb_dir, VALID)
    report = sync_folder(engine, pb_dir, clock)
    content_hash = report.new_revisions[0][1]
    with session_scope(engine) as session:
        revision, _ = find_revision(session, "drill", content_hash[:8])
        assert revision.content_hash == content_hash
        with pytest.raises(NotFoundError, match="playbook 'drill' has no revision 'ffff0000'"):
            find_revision(session, "drill", "ffff0000")


def test_a_removed_schedule_is_deleted_unless_a_run_used_it(engine: Engine, pb_dir: Path, clock: FrozenClock) -> None:
    _write(pb_dir, VALID + AUTUMN)
    sync_folder(engine, pb_dir, clock)
    schedules = _schedules(engine)
    with session_scope(engine) as session:
        session.add(
            TestRun(
                playbook_id="drill",
                revision_id=schedules["spring"].revision_id,
                schedule_id=schedules["spring"].id,
                dedupe_key="spring@2026-04-14",
                trigger="schedule",
                fire_at=datetime(2026, 4, 14, 9, tzinfo=UTC),
            )
        )
    _write(pb_dir, VALID.replace("schedules:\n", "schedules: []\n").split("  - key: spring")[0])
    sync_folder(engine, pb_dir, clock)
    remaining = _schedules(engine)
    assert list(remaining) == ["spring"]
    assert remaining["spring"].paused is True


def test_the_scheduler_owned_columns_are_left_alone(engine: Engine, pb_dir: Path, clock: FrozenClock) -> None:
    _write(pb_dir, VALID)
    sync_folder(engine, pb_dir, clock)
    planned = datetime(2026, 4, 20, 9, 30, tzinfo=UTC)
    with session_scope(engine) as session:
        row = session.exec(select(Schedule)).one()
        row.next_fire_at, row.paused = planned, True
        session.add(row)
    _write(pb_dir, VALID.replace("title: Drill", "title: Drill two"))
    clock.advance(timedelta(hours=1).total_seconds())
    sync_folder(engine, pb_dir, clock)
    row = _schedules(engine)["spring"]
    assert (row.next_fire_at, row.paused, row.updated_at) == (planned, True, clock.now())


def test_two_files_with_the_same_id_make_the_second_one_invalid(pb_dir: Path) -> None:
    _write(pb_dir, VALID, "a.yaml")
    second = _write(pb_dir, VALID.replace("title: Drill", "title: Copy"), "b.yaml")
    folder = load_folder(pb_dir)
    assert [p.path.name for p in folder.valid] == ["a.yaml"]
    assert [str(p) for p in folder.invalid[0][1].problems] == [
        f"{second}:1:5: id: playbook id 'drill' is already used by a.yaml; give this playbook its own id"
    ]


def test_a_missing_folder_is_a_helpful_error(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist; create it or set COMMTEST_PLAYBOOK_DIR"):
        load_folder(tmp_path / "nope")


def test_a_sync_within_a_deadline_leaves_the_files_it_did_not_reach_as_they_were(
    engine: Engine, pb_dir: Path, clock: FrozenClock
) -> None:
    from time import monotonic

    from tests.hostile import slow_templates_playbook

    _write(pb_dir, VALID, "a-drill.yaml")
    for name in ("b-slow", "c-slow"):
        _write(pb_dir, slow_templates_playbook(name), f"{name}.yaml")
    started = monotonic()
    report = sync_folder(engine, pb_dir, clock, deadline=started + 0.5)
    assert monotonic() - started < 3  # not the 4 s a slow file takes, let alone 8
    assert [p.spec.id for p in report.valid] == ["drill"] and report.invalid == []
    assert [p.name for p in report.deferred] == ["b-slow.yaml", "c-slow.yaml"]
    with session_scope(engine) as session:
        assert [p.id for p in session.exec(select(Playbook)).all()] == ["drill"]  # nothing recorded of the others
