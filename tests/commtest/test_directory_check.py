"""``directory check`` (gaps against hand-built requirements) and ``directory show``."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from commtest.clock import UTC
from commtest.db import session_scope
from commtest.directory import Gap, Requirement, check_directory, import_directory
from commtest.models import Endpoint

from .test_directory_support import BASE_YAML, SAMPLE, write

NOW = datetime(2026, 4, 14, 8, 0, tzinfo=UTC)
DESK = Requirement("BE-NCCN", "crisis-desk", frozenset({"email", "voice", "sms"}), "spring-test")
# LU-CNC has no contact point in BASE_YAML: as a participant, that is a gap of its own.
LU_COORDINATES = BASE_YAML.replace(
    "    timezone: Europe/Luxembourg\n", "    timezone: Europe/Luxembourg\n    role: coordinator\n"
)


def _gaps(engine: Engine, requirements: list[Requirement], max_age_days: int = 180) -> list[Gap]:
    with session_scope(engine) as s:
        return check_directory(s, requirements, now=NOW, max_age_days=max_age_days)


def _verify_all(engine: Engine, at: datetime) -> None:
    with session_scope(engine) as s:
        for ep in s.exec(select(Endpoint)):
            ep.verified_at = at
            s.add(ep)


def test_a_complete_directory_has_no_gaps(engine: Engine, tmp_path: Path) -> None:
    import_directory(engine, write(tmp_path, LU_COORDINATES))
    _verify_all(engine, datetime(2026, 3, 17, 9, 0, tzinfo=UTC))
    assert _gaps(engine, [DESK]) == []


def test_every_kind_of_gap_is_found_and_said(engine: Engine, tmp_path: Path) -> None:
    import_directory(engine, write(tmp_path, BASE_YAML))
    _verify_all(engine, datetime(2025, 1, 1, tzinfo=UTC))
    with session_scope(engine) as s:
        email = s.exec(select(Endpoint).where(Endpoint.kind == "email")).one()
        email.status, email.last_outcome = "suspect", "bounced"
        s.add(email)
        s.exec(select(Endpoint).where(Endpoint.kind == "voice")).one().verified_at = None
    requirements = [
        Requirement("BE-NCCN", "crisis-desk", frozenset({"email", "video"}), "spring-test"),
        Requirement("LU-CNC", "crisis-desk", frozenset({"email"}), "spring-test"),
        Requirement("FR-COGIC", "crisis-desk", frozenset({"email"}), "autumn-test"),
    ]
    assert [(g.kind, str(g)) for g in _gaps(engine, requirements)] == [
        ("missing-channel", "BE-NCCN/crisis-desk: no active email endpoint (needed by playbook spring-test)"),
        ("missing-channel", "BE-NCCN/crisis-desk: no active video endpoint (needed by playbook spring-test)"),
        ("no-contact-point", "FR-COGIC crisis-desk: FR-COGIC is not in the directory (needed by playbook autumn-test)"),
        ("no-contact-point",
         "LU-CNC crisis-desk: LU-CNC has no active contact point for crisis-desk (needed by playbook spring-test)"),
        ("suspect", "BE-NCCN/crisis-desk: email permanence@nccn.example is marked suspect (last outcome: bounced); "
                    "correct or remove it"),
        ("never-verified", "BE-NCCN/crisis-desk: voice +3225550110 was never verified"),
        ("not-verified", "BE-NCCN/crisis-desk: sms +32470550110 not verified for more than 180 days (last on 2025-01-01)"),
    ]  # fmt: skip


def test_the_age_limit_is_a_parameter(engine: Engine, tmp_path: Path) -> None:
    import_directory(engine, write(tmp_path, LU_COORDINATES))
    _verify_all(engine, datetime(2026, 3, 1, tzinfo=UTC))
    assert _gaps(engine, [], max_age_days=60) == []
    assert {g.kind for g in _gaps(engine, [], max_age_days=30)} == {"not-verified"}


def test_the_cli_check_exits_1_and_lists_the_gaps(run_cli, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import_directory(engine, SAMPLE)
    empty = tmp_path / "playbooks"
    empty.mkdir()
    result = run_cli("directory", "check", "--max-age-days", "36500", "--playbook-dir", str(empty))
    assert result.exit_code == 1
    assert "never-verified: BE-NCCN/cyber: email lotte.claessens@nccn.example was never verified" in result.stdout
    # the sample's deliberate gaps show without a playbook asking for them
    assert (
        "no-contact-point: LU-CNC water-floods: LU-CNC has no active contact point for water-floods "
        "(no playbook requires it yet)"
    ) in result.stdout
    assert "no-contact-point: NL-NCC nuclear: NL-NCC has no active contact point for nuclear" in result.stdout
    # the 2 deliberate participant x field gaps, 5 endpoints never verified
    assert "7 gap(s) found" in result.stderr


def test_the_cli_check_exits_0_on_a_complete_directory(run_cli, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import_directory(engine, write(tmp_path, LU_COORDINATES))
    _verify_all(engine, datetime(2026, 3, 17, tzinfo=UTC))
    empty = tmp_path / "playbooks"
    empty.mkdir()
    result = run_cli("directory", "check", "--max-age-days", "36500", "--playbook-dir", str(empty))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.stdout.startswith("no gaps")


def test_the_cli_check_reads_the_shipped_playbooks(run_cli, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("playbooks.store")
    import_directory(engine, write(tmp_path, BASE_YAML))
    _verify_all(engine, datetime(2026, 3, 17, tzinfo=UTC))
    result = run_cli("directory", "check", "--max-age-days", "36500")
    assert result.exit_code == 1
    assert "NL-NCC crisis-desk: NL-NCC is not in the directory (needed by playbook" in result.stdout
    assert "BE-NCCN/crisis-desk: no active video endpoint" in result.stdout


def test_show_prints_each_organisation_with_full_addresses(run_cli, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    import_directory(engine, SAMPLE)
    result = run_cli("directory", "show", "lu-cnc")
    assert result.exit_code == 0
    assert "LU-CNC  Centre national de crise" in result.stdout
    assert "+35224785510" in result.stdout and "permanence@cnc.example" in result.stdout
    assert "never" in result.stdout  # LU-CNC/civil-protection's voice line was never verified
    assert "BE-NCCN" not in result.stdout


def test_show_of_an_unknown_organisation_exits_2(run_cli, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    import_directory(engine, SAMPLE)
    result = run_cli("directory", "show", "FR-COGIC")
    assert result.exit_code == 2
    assert "no organisation 'FR-COGIC' in the directory; known: BE-NCCN, BNL-SG, DE-NW-LZ, LU-CNC, NL-NCC" in result.stderr


def test_a_participant_without_a_contact_point_for_a_field_is_a_gap_even_if_no_playbook_needs_it(
    engine: Engine, tmp_path: Path
) -> None:
    import_directory(engine, write(tmp_path, BASE_YAML))
    _verify_all(engine, datetime(2026, 3, 17, 9, 0, tzinfo=UTC))
    assert [(g.kind, str(g), g.playbook_id) for g in _gaps(engine, [DESK])] == [
        ("no-contact-point",
         "LU-CNC crisis-desk: LU-CNC has no active contact point for crisis-desk (no playbook requires it yet)", None),
    ]  # fmt: skip
    # when a playbook needs it, the gap is said once, naming the playbook
    lu_desk = Requirement("LU-CNC", "crisis-desk", frozenset({"email"}), "spring-test")
    assert [str(g) for g in _gaps(engine, [DESK, lu_desk])] == [
        "LU-CNC crisis-desk: LU-CNC has no active contact point for crisis-desk (needed by playbook spring-test)"
    ]


def test_an_inactive_contact_point_leaves_its_field_uncovered_but_a_coordinator_needs_none(
    engine: Engine, tmp_path: Path
) -> None:
    text = LU_COORDINATES.replace("        languages: [nl, fr]\n", "        languages: [nl, fr]\n        active: false\n")
    import_directory(engine, write(tmp_path, text))
    assert [(g.kind, g.organisation_code, g.field_code) for g in _gaps(engine, [])] == [
        ("no-contact-point", "BE-NCCN", "crisis-desk")
    ]


def test_a_blocked_number_is_a_gap_that_says_what_to_do_and_show_prints_it(run_cli, engine: Engine,  # type: ignore[no-untyped-def]
                                                                          tmp_path: Path) -> None:
    import_directory(engine, write(tmp_path, LU_COORDINATES))
    _verify_all(engine, datetime(2026, 3, 17, 9, 0, tzinfo=UTC))
    with session_scope(engine) as s:
        sms = s.exec(select(Endpoint).where(Endpoint.kind == "sms")).one()
        sms.status, sms.last_outcome = "blocked", "blocked"
        s.add(sms)
    assert [(g.kind, str(g)) for g in _gaps(engine, [DESK])] == [
        ("missing-channel", "BE-NCCN/crisis-desk: no active sms endpoint (needed by playbook spring-test)"),
        ("blocked", "BE-NCCN/crisis-desk: sms +32470550110 is blocked: the number replied STOP; ask the centre to "
                    "send START from it, or to give another number"),
    ]
    result = run_cli("directory", "show", "be-nccn")
    assert result.exit_code == 0
    [line] = [ln for ln in result.stdout.splitlines() if "+32470550110" in ln]
    assert "│ blocked " in line
