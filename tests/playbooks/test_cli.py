"""``commtest playbook validate|list|show``."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.playbooks.conftest import VALID


@pytest.fixture
def folder(pb_dir: Path, monkeypatch: pytest.MonkeyPatch, cli_env: dict[str, str]) -> Path:
    monkeypatch.setenv("COMMTEST_PLAYBOOK_DIR", str(pb_dir))
    return pb_dir


def test_validate_prints_ok_with_the_id_and_hash_and_exits_0(run_cli, pb_dir: Path) -> None:  # type: ignore[no-untyped-def]
    path = pb_dir / "drill.yaml"
    path.write_text(VALID, encoding="utf-8")
    result = run_cli("playbook", "validate", str(path))
    assert result.exit_code == 0
    assert result.stdout.startswith("OK drill ")
    assert len(result.stdout.split()[2]) == 12


def test_validate_prints_every_problem_and_exits_2(run_cli, pb_dir: Path) -> None:  # type: ignore[no-untyped-def]
    path = pb_dir / "drill.yaml"
    path.write_text(VALID.replace("channel: voice", "channel: pigeon").replace("15m", "soon"), encoding="utf-8")
    result = run_cli("playbook", "validate", str(path))
    assert result.exit_code == 2
    assert result.stdout.splitlines() == [
        f"{path}:11:19: steps[0].ack_deadline: expected a duration such as 15m, 2h or PT15M, got 'soon'",
        f"{path}:13:14: steps[1].channel: unknown channel 'pigeon'; expected one of email, voice, sms, video, cap, manual",
    ]
    assert "invalid playbook(s): fix the problems above; nothing was loaded" in result.stderr


def test_validate_refuses_an_impossible_cron_window_schedule_with_its_position(run_cli, pb_dir: Path) -> None:  # type: ignore[no-untyped-def]
    path = pb_dir / "drill.yaml"
    path.write_text(
        VALID.replace("    months: [april]\n", "    cron: \"0 10 * 4 mon-fri\"\n").replace("days: mon-fri", "days: sat-sun"),
        encoding="utf-8",
    )
    result = run_cli("playbook", "validate", str(path))
    assert result.exit_code == 2
    assert result.stdout.splitlines() == [
        f"{path}:30:20: schedules[0].window.days: impossible schedule, it never fires: "
        "a test day must be a cron day and a window day, but cron '0 10 * 4 mon-fri' picks only "
        "mon, tue, wed, thu, fri and window.days only sat, sun; change the cron's weekday field or window.days"
    ]


def test_validate_a_missing_file_exits_2(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("playbook", "validate", str(tmp_path / "gone.yaml"))
    assert result.exit_code == 2
    assert result.stdout.startswith(f"{tmp_path / 'gone.yaml'}: cannot read the file: ")


def test_validate_the_shipped_folder(run_cli) -> None:  # type: ignore[no-untyped-def]
    from commtest.settings import shipped_playbook_dir

    result = run_cli("playbook", "validate", str(shipped_playbook_dir()))
    assert result.exit_code == 0
    assert "OK benelux-nrw-crisis-centres " in result.stdout


def test_list_syncs_the_folder_and_warns_about_invalid_files(run_cli, folder: Path) -> None:  # type: ignore[no-untyped-def]
    (folder / "drill.yaml").write_text(VALID, encoding="utf-8")
    (folder / "broken.yaml").write_text(VALID.replace("id: drill", "id: broken").replace("15m", "soon"), encoding="utf-8")
    result = run_cli("playbook", "list")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "TITLE", "OWNER", "REVISION", "REVS", "SCHEDULES", "LAST", "ERROR"]
    broken = next(line for line in lines if line.startswith("broken"))
    assert broken.split()[:6] == ["broken", "-", "-", "-", "0", "-"]
    assert "steps[0].ack_deadline: expected a duration" in broken
    drill = next(line for line in lines if line.startswith("drill"))
    assert drill.split()[:3] == ["drill", "Drill", "BNL-SG"] and drill.split()[4:6] == ["1", "spring"]
    assert f"warning: {folder / 'broken.yaml'} is invalid and was not loaded (its last good revision stays in use):" in result.stderr


def test_show_describes_steps_targets_schedules_and_languages(run_cli, folder: Path) -> None:  # type: ignore[no-untyped-def]
    (folder / "drill.yaml").write_text(VALID + "targets:\n  email: 15m\n", encoding="utf-8")
    result = run_cli("playbook", "show", "drill")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "  BE-NCCN: crisis-desk" in out
    assert "  mail: email, template invite, on escalation only, ack within 15 min" in out
    assert "  call: voice, template call, starts at +0 s, ack within 5 min, escalates to step mail" in out
    assert "  email: 15 min" in out
    assert "  spring: months 4, window mon,tue,wed,thu,fri 09:00-16:00 Europe/Brussels, unannounced" in out
    assert "  invite: en" in out
    assert "revisions: 1" in out


def test_show_an_older_revision_by_its_hash(run_cli, folder: Path) -> None:  # type: ignore[no-untyped-def]
    path = folder / "drill.yaml"
    path.write_text(VALID, encoding="utf-8")
    first = run_cli("playbook", "list").stdout.splitlines()[1].split()[3]
    path.write_text(VALID.replace("title: Drill", "title: Drill two"), encoding="utf-8")
    result = run_cli("playbook", "show", "drill", "--revision", first)
    assert result.exit_code == 0
    assert result.stdout.startswith("drill: Drill\n")
    assert "revisions: 2" in result.stdout


def test_show_an_unknown_playbook_exits_2(run_cli, folder: Path) -> None:  # type: ignore[no-untyped-def]
    (folder / "drill.yaml").write_text(VALID, encoding="utf-8")
    result = run_cli("playbook", "show", "nope")
    assert result.exit_code == 2
    assert "error: no playbook 'nope' (known: drill)" in result.stderr
