"""Merge (the default) versus --replace, and what neither may erase."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from sqlalchemy.engine import Engine
from sqlmodel import select

from commtest.clock import UTC
from commtest.db import session_scope
from commtest.directory import import_directory, resolve_contact_points
from commtest.models import (
    ContactPoint,
    Endpoint,
    FieldOfWork,
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
    assert summary.count("fields_of_work", "unchanged") == 1  # names left out of the file: the database's stay
    assert counts(engine) == {"organisation": 2, "field_of_work": 1, "contact_point": 2, "endpoint": 4}
    with session_scope(engine) as s:
        lu = s.exec(select(Organisation).where(Organisation.code == "LU-CNC")).one()
        assert lu.name == "Centre national de crise (renamed)"
        assert s.exec(select(FieldOfWork.names)).one() == {"nl": "Permanentie", "fr": "Permanence"}
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


SMS_IN_FILE = datetime(2026, 3, 17, 9, 15, tzinfo=UTC)  # the sms verified_at BASE_YAML states


def _learn(engine: Engine, kind: str, at: datetime, run_id: int, outcome: str = "acked") -> None:
    """What a test run records when an endpoint answers (scheduler/records.py)."""
    with session_scope(engine) as s:
        ep = s.exec(select(Endpoint).where(Endpoint.kind == kind)).one()
        ep.verified_at, ep.verified_run_id, ep.last_outcome, ep.last_outcome_at = at, run_id, outcome, at
        s.add(ep)


def _facts(engine: Engine, kind: str) -> tuple[object, ...]:
    ep = _endpoint(engine, kind)
    return ep.verified_at, ep.verified_run_id, ep.last_outcome, ep.last_outcome_at


@pytest.mark.parametrize("replace", [False, True], ids=["merge", "replace"])
def test_an_import_never_moves_verified_at_back_to_the_files_older_date(
    engine: Engine, tmp_path: Path, replace: bool
) -> None:
    path = write(tmp_path, BASE_YAML)
    import_directory(engine, path)
    today = datetime(2026, 4, 14, 8, 0, tzinfo=UTC)
    _learn(engine, "sms", today, run_id=7)
    summary = import_directory(engine, path, replace=replace)
    assert _facts(engine, "sms") == (today, 7, "acked", today)
    assert summary.count("endpoints", "unchanged") == 3


@pytest.mark.parametrize("replace", [False, True], ids=["merge", "replace"])
def test_a_later_verified_at_in_the_file_wins_and_no_longer_names_the_run(
    engine: Engine, tmp_path: Path, replace: bool
) -> None:
    path = write(tmp_path, BASE_YAML)
    import_directory(engine, path)
    earlier = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    _learn(engine, "sms", earlier, run_id=7, outcome="no_answer")
    summary = import_directory(engine, path, replace=replace)
    # Verified by hand after the run: the run did not prove this date. The last outcome stays a fact of the run.
    assert _facts(engine, "sms") == (SMS_IN_FILE, None, "no_answer", earlier)
    assert summary.count("endpoints", "updated") == 1


def test_an_e_mail_address_differing_only_in_case_is_the_same_endpoint(engine: Engine, tmp_path: Path) -> None:
    import_directory(engine, write(tmp_path, BASE_YAML, "base.yaml"))
    today = datetime(2026, 4, 14, 8, 0, tzinfo=UTC)
    _learn(engine, "email", today, run_id=7)
    shouting = BASE_YAML.replace("address: permanence@nccn.example", "address: Permanence@NCCN.example")
    summary = import_directory(engine, write(tmp_path, shouting))
    assert summary.count("endpoints", "created") == 0
    assert summary.count("endpoints", "updated") == 1
    # the domain is lowercased, the local part kept as written; what tests learned stays
    assert _addresses(engine, "email") == {"Permanence@nccn.example"}
    assert _facts(engine, "email") == (today, 7, "acked", today)
    summary = import_directory(engine, write(tmp_path, BASE_YAML, "lower.yaml"), replace=True)
    assert (summary.count("endpoints", "created"), summary.count("endpoints", "deleted")) == (0, 0)
    assert _addresses(engine, "email") == {"permanence@nccn.example"}


def test_replace_removes_an_old_copy_of_an_e_mail_endpoint_differing_only_in_case(
    engine: Engine, tmp_path: Path
) -> None:
    path = write(tmp_path, BASE_YAML)
    import_directory(engine, path)
    with session_scope(engine) as s:  # what imports before this fix could leave behind
        ep = s.exec(select(Endpoint).where(Endpoint.kind == "email")).one()
        s.add(Endpoint(contact_point_id=ep.contact_point_id, kind="email", address="PERMANENCE@nccn.example"))
    assert import_directory(engine, path).count("endpoints", "unchanged") == 3  # merge leaves the copy alone
    summary = import_directory(engine, path, replace=True)
    assert summary.count("endpoints", "deleted") == 1
    assert _addresses(engine, "email") == {"permanence@nccn.example"}


LABELLED = (
    BASE_YAML.replace("{kind: email, address: permanence@nccn.example}",
                      "{kind: email, address: permanence@nccn.example, priority: 2, label: functional mailbox}")
    .replace("        languages: [nl, fr]\n", "        languages: [nl, fr]\n        title: Duty officer\n")
    .replace("    timezone: Europe/Luxembourg\n", "    timezone: Europe/Luxembourg\n    notes: Under the HCPN.\n"
             "    role: coordinator\n")
)  # fmt: skip


def test_a_merge_keeps_the_database_value_of_a_key_the_yaml_file_leaves_out(engine: Engine, tmp_path: Path) -> None:
    import_directory(engine, write(tmp_path, LABELLED, "labelled.yaml"))
    summary = import_directory(engine, write(tmp_path, BASE_YAML))
    assert all(c.updated == 0 for c in summary.counts), summary.render()
    email = _endpoint(engine, "email")
    assert (email.label, email.priority) == ("functional mailbox", 2)
    with session_scope(engine) as s:
        assert s.exec(select(ContactPoint.title)).one() == "Duty officer"
        lu = s.exec(select(Organisation).where(Organisation.code == "LU-CNC")).one()
        assert (lu.notes, lu.role) == ("Under the HCPN.", "coordinator")
    # a key given empty clears it
    import_directory(engine, write(tmp_path, LABELLED.replace("label: functional mailbox", "label: ''"), "cleared.yaml"))
    assert _endpoint(engine, "email").label == ""


def test_a_merge_keeps_the_database_value_of_an_empty_csv_cell(engine: Engine, tmp_path: Path) -> None:
    import_directory(engine, write(tmp_path, LABELLED, "labelled.yaml"))
    csv_text = (
        "organisation_code,organisation_name,country,organisation_languages,organisation_timezone,field,field_name,"
        "contact_point_code,contact_point_name,contact_point_kind,title,languages,active,endpoint_kind,address,"
        "priority,label,status,verified_at\n"
        "BE-NCCN,,,,,crisis-desk,,,Permanentie,,,,,email,permanence@nccn.example,,,,\n"
    )
    summary = import_directory(engine, write(tmp_path, csv_text, "thin.csv"))
    assert summary.count("endpoints", "unchanged") == 1 and summary.count("contact_points", "unchanged") == 1
    email = _endpoint(engine, "email")
    assert (email.label, email.priority) == ("functional mailbox", 2)
    with session_scope(engine) as s:
        assert s.exec(select(ContactPoint.title)).one() == "Duty officer"


def test_replace_takes_the_file_as_the_truth_but_keeps_what_tests_learned(engine: Engine, tmp_path: Path) -> None:
    import_directory(engine, write(tmp_path, LABELLED, "labelled.yaml"))
    today = datetime(2026, 4, 14, 8, 0, tzinfo=UTC)
    _learn(engine, "email", today, run_id=7)
    import_directory(engine, write(tmp_path, BASE_YAML), replace=True)
    email = _endpoint(engine, "email")
    assert (email.label, email.priority, email.verified_at, email.verified_run_id) == ("", 1, today, 7)
    with session_scope(engine) as s:
        assert s.exec(select(ContactPoint.title)).one() == ""
        assert s.exec(select(Organisation.role).where(Organisation.code == "LU-CNC")).one() == "participant"


def _block_sms(engine: Engine) -> None:
    with session_scope(engine) as s:
        ep = s.exec(select(Endpoint).where(Endpoint.kind == "sms")).one()
        ep.status = "blocked"  # the number replied STOP (scheduler.endpoint_flags)
        s.add(ep)


@pytest.mark.parametrize("replace", [False, True])
def test_an_import_never_unblocks_a_number_that_replied_stop(engine: Engine, tmp_path: Path, replace: bool) -> None:
    import_directory(engine, write(tmp_path, BASE_YAML, "base.yaml"))
    _block_sms(engine)
    import_directory(engine, write(tmp_path, BASE_YAML, "base.yaml"), replace=replace)  # the file states no status
    assert _endpoint(engine, "sms").status == "blocked"
    says_active = BASE_YAML.replace("verified_at: '2026-03-17T09:15:00Z'}", "verified_at: '2026-03-17T09:15:00Z', "
                                                                            "status: active}")
    summary = import_directory(engine, write(tmp_path, says_active), replace=replace)
    assert _endpoint(engine, "sms").status == "blocked"
    assert summary.notes == ("endpoint sms +32470550110 of BE-NCCN/crisis-desk is blocked (the number replied STOP): "
                             "kept blocked, not active as the file says; it becomes active when the number sends "
                             "START, or by editing the endpoint",)
    assert "note: endpoint sms +32470550110" in summary.render()


def test_an_import_may_still_say_a_blocked_number_is_invalid_and_an_export_reads_back(engine: Engine,
                                                                                      tmp_path: Path) -> None:
    from commtest.directory import export_directory

    import_directory(engine, write(tmp_path, BASE_YAML, "base.yaml"))
    _block_sms(engine)
    exported = export_directory(engine, "yaml")
    assert "status: blocked" in exported
    again = import_directory(engine, write(tmp_path, exported, "exported.yaml"))
    assert again.count("endpoints", "unchanged") == 3 and again.notes == ()
    import_directory(engine, write(tmp_path, exported.replace("status: blocked", "status: invalid"), "invalid.yaml"))
    assert _endpoint(engine, "sms").status == "invalid"
