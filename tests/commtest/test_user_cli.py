"""``commtest user add|passwd|disable|enable|list``, ``commtest token ...`` and the README's sign-off steps."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy.engine import Engine

from commtest.access import authenticate_token, open_session, read_session_token
from commtest.clock import UTC
from commtest.db import make_engine
from commtest.users import check_password, get_user

PASSWORD = "fictional-pass-phrase-42"


@pytest.fixture
def db(cli_env: dict[str, str]) -> Engine:
    eng = make_engine(cli_env["COMMTEST_DATABASE_URL"])
    yield eng
    eng.dispose()


def test_the_readme_sign_off_steps_work_from_a_fresh_database(run_cli, db: Engine) -> None:  # type: ignore[no-untyped-def]
    r = run_cli("user", "add", "reviewer1", "--role", "reviewer", "--name", "A. Reviewer (fictional)")
    assert r.exit_code == 0 and "set a password with `commtest user passwd reviewer1`" in r.output
    r = run_cli("user", "passwd", "reviewer1", "--password-stdin", input=PASSWORD + "\n")
    assert r.exit_code == 0 and "password of reviewer1 set" in r.output
    assert check_password(db, "reviewer1", PASSWORD)
    assert run_cli("report", "monthly", "2026-09", "--format", "html").exit_code == 0
    r = run_cli("report", "sign", "2026-09", "--user", "reviewer1", "--comment", "Seen; NRW e-mail to fix",
                "--password-stdin", input=PASSWORD + "\n")
    assert r.exit_code == 0 and "2026-09: signed by A. Reviewer (fictional)" in r.output


def test_passwd_without_a_terminal_or_stdin_says_how_and_an_unknown_user_is_named(run_cli, db: Engine) -> None:  # type: ignore[no-untyped-def]
    run_cli("user", "add", "ria", "--role", "reviewer")
    r = run_cli("user", "passwd", "ria")
    assert r.exit_code == 2 and "pass it with --password-stdin" in r.output
    r = run_cli("user", "passwd", "nobody", "--password-stdin", input=PASSWORD + "\n")
    assert r.exit_code == 2 and "user 'nobody' does not exist" in r.output


def test_a_short_password_is_refused_and_nothing_changes(run_cli, db: Engine) -> None:  # type: ignore[no-untyped-def]
    run_cli("user", "add", "ria", "--role", "reviewer", "--password-stdin", input=PASSWORD + "\n")
    r = run_cli("user", "passwd", "ria", "--password-stdin", input="short\n")
    assert r.exit_code == 2 and "at least 12 characters" in r.output
    assert check_password(db, "ria", PASSWORD)


def test_a_new_password_and_disabling_end_the_users_console_sessions(run_cli, db: Engine) -> None:  # type: ignore[no-untyped-def]
    run_cli("user", "add", "cora", "--role", "coordinator", "--password-stdin", input=PASSWORD + "\n")
    now = datetime.now(UTC)
    user = get_user(db, "cora")
    from datetime import timedelta

    cookie = open_session(db, user.id, now, timedelta(hours=8))
    assert read_session_token(db, cookie, now) is not None
    run_cli("user", "passwd", "cora", "--password-stdin", input="another-fictional-phrase\n")
    assert read_session_token(db, cookie, now) is None
    cookie = open_session(db, user.id, now, timedelta(hours=8))
    r = run_cli("user", "disable", "cora")
    assert r.exit_code == 0 and read_session_token(db, cookie, now) is None
    assert "(disabled)" in run_cli("user", "list").output
    assert run_cli("user", "enable", "cora").exit_code == 0 and "(disabled)" not in run_cli("user", "list").output


def test_a_token_is_printed_once_listed_without_its_secret_and_refused_once_revoked(run_cli, db: Engine) -> None:  # type: ignore[no-untyped-def]
    run_cli("user", "add", "cora", "--role", "coordinator")
    r = run_cli("token", "add", "cora", "--name", "crisis platform")
    assert r.exit_code == 0
    raw = r.output.strip().splitlines()[-1]
    assert raw.startswith("ct_") and authenticate_token(db, raw) is not None
    listed = run_cli("token", "list").output
    assert "crisis platform" in listed and raw not in listed and "active" in listed
    assert run_cli("token", "revoke", "1").exit_code == 0
    assert authenticate_token(db, raw) is None and "revoked" in run_cli("token", "list", "cora").output
    r = run_cli("token", "revoke", "99")
    assert r.exit_code == 2 and "no API token 99" in r.output
