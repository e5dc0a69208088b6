"""Merge (the default) versus --replace, and what neither may erase."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import select

from commtest.clock import UTC
from commtest.db import session_scope
from commtest.directory import import_directory, resolve_contact_points
from commtest.models import (
    ContactPoint,
    Endpoint,
    Organisation,
    Ping,
    Playbook,
    PlaybookRevision,
    TestRun,
)

from .test_directory_support import BASE_YAML, counts, write

ONLY_LU = """\
fields_of_work:
  - {code: crisis-desk, name: 24/7 desk}
organisations:
  - code: LU-CNC
    name: Centre national de crise (renamed)
    country: LU
    languages: [fr, de, lb]
    timezone: Europe/Luxembourg
    contact_points:
      - field: crisis-desk
        name: Permanence CNC
        endpoints:
          - {kind: voice, address: '2478 5510'}
"""


def _endpoint(engine: Engine, kind: str) -> Endpoint:
    with session_scope(engine) as s:
        return s.exec(select(Endpoint).where(Endpoint.kind == kind)).one()


def _addresses(engine: Engine, kind: str) -> set[str]:
    with session_scope(engine) as s:
        return set(s.exec(select(Endpoint.address).where(Endpoint.kind == kind)))


def test_merge_updates_by_code_and_leaves_unmentioned_rows_alone(engine: Engine, tmp_path: Path) -> None:
    import_directory(engine, write(tmp_path, BASE_YAML, "base.yaml"))
    summary = import_directory(engine, write(tmp_path, ONLY_LU))
    assert summary.count("organisations", "updated") == 1
    assert summary.count("contact_points", "created") == 1
    assert summary.count("fields_of_work", "updated") == 1  # the names were dropped from the field
    assert counts(engine) == {"organisation": 2, "field_of_work": 1, "contact_point": 2, "endpoint": 4}
    with session_scope(engine) as s:
        lu = s.exec(select(Organisation).where(Organisation.code == "LU-CNC")).one()
        assert lu.name == "Centre national de crise (renamed)"
        assert [c.code for c in resolve_contact_points(s, "LU-CNC", "crisis-desk")] == ["LU-CNC/crisis-desk"]
    # the national number was read with LU-CNC's country as the region hint
    assert _addresses(engine, "voice") == {"+3225550110", "+35224785510"}


def test_a_second_identical_import_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path, BASE_YAML)
    import_directory(engine, path)
    again = import_directory(engine, path)
    assert again.count("endpoints", "unchanged") == 3
    assert all(c.created == c.updated == c.deleted == 0 for c in again.counts)


def test_merge_keeps_what_tests_learned_unless_the_file_says_otherwise(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path, BASE_YAML)
    import_directory(engine, path)
    proven = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
    with session_scope(engine) as s:
        ep = s.exec(select(Endpoint).where(Endpoint.kind == "email")).one()
        ep.verified_at, ep.last_outcome, ep.status = proven, "acked", "suspect"
        s.add(ep)
    import_directory(engine, path)
    ep = _endpoint(engine, "email")
    assert (ep.verified_at, ep.last_outcome, ep.status) == (proven, "acked", "suspect")
    import_directory(engine, write(tmp_path, BASE_YAML.replace("nccn.example}", "nccn.example, status: active}")))
    assert _endpoint(engine, "email").status == "active"


def test_a_file_may_add_a_contact_point_to_an_organisation_the_database_has(engine: Engine, tmp_path: Path) -> None:
    import_directory(engine, write(tmp_path, BASE_YAML, "base.yaml"))
    csv_text = (
        "organisation_code,organisation_name,country,organisation_languages,organisation_timezone,field,field_name,"
        "contact_point_code,contact_point_name,contact_point_kind,title,languages,active,endpoint_kind,address,"
        "priority,label,status,verified_at\n"
        "LU-CNC,,,,,crisis-desk,,,Permanence CNC,desk,,fr,true,voice,2478 5510,1,,,\n"
    )
    summary = import_directory(engine, write(tmp_path, csv_text, "add.csv"))
    assert summary.count("contact_points", "created") == 1
    # the national number was read with LU-CNC's country as the region hint
    assert _addresses(engine, "voice") == {"+3225550110", "+35224785510"}


def test_replace_deletes_what_the_file_no_longer_has(engine: Engine, tmp_path: Path) -> None:
    import_directory(engine, write(tmp_path, BASE_YAML, "base.yaml"))
    summary = import_directory(engine, write(tmp_path, ONLY_LU), replace=True)
    assert summary.count("organisations", "deleted") == 1
    assert summary.count("contact_points", "deleted") == 1
    assert summary.count("endpoints", "deleted") == 3
    assert counts(engine) == {"organisation": 1, "field_of_work": 1, "contact_point": 1, "endpoint": 1}


def _ping(engine: Engine, endpoint_kind: str) -> None:
    now = datetime(2026, 4, 14, 8, 0, tzinfo=UTC)
    with session_scope(engine) as s:
        ep = s.exec(select(Endpoint).where(Endpoint.kind == endpoint_kind)).one()
        s.add(Playbook(id="pb"))
        s.flush()
        rev = PlaybookRevision(playbook_id="pb", content_hash="0" * 64, title="t", owner="BNL-SG", source_text="x",
                               created_at=now)  # fmt: skip
        s.add(rev)
        s.flush()
        run = TestRun(playbook_id="pb", revision_id=rev.id, dedupe_key="manual:1", fire_at=now)
        s.add(run)
        s.flush()
        s.add(Ping(run_id=run.id, contact_point_id=ep.contact_point_id, endpoint_id=ep.id, organisation_code="BE-NCCN",
                   channel=endpoint_kind, due_at=now))  # fmt: skip


def test_replace_deactivates_instead_of_deleting_what_pings_refer_to(engine: Engine, tmp_path: Path) -> None:
    import_directory(engine, write(tmp_path, BASE_YAML, "base.yaml"))
    _ping(engine, "sms")
    summary = import_directory(engine, write(tmp_path, ONLY_LU), replace=True)
    assert summary.count("contact_points", "deactivated") == 1
    assert summary.count("endpoints", "deactivated") == 1
    assert summary.count("endpoints", "deleted") == 2
    rendered = summary.render()
    assert "note: contact point BE-NCCN/crisis-desk is referenced by pings: deactivated, not deleted" in rendered
    assert "note: endpoint sms +32470550110 of BE-NCCN/crisis-desk is referenced by pings: marked invalid" in rendered
    assert "note: organisation BE-NCCN kept: a deactivated contact point still belongs to it" in rendered
    with session_scope(engine) as s:
        cp = s.exec(select(ContactPoint).where(ContactPoint.code == "BE-NCCN/crisis-desk")).one()
        assert cp.active is False
        assert resolve_contact_points(s, "BE-NCCN", "crisis-desk") == []
    assert _endpoint(engine, "sms").status == "invalid"
