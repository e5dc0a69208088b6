"""Shared fixtures.

Databases: every test that asks for ``engine`` runs against SQLite, and against
PostgreSQL as well when ``COMMTEST_TEST_POSTGRES_URL`` is set (``.ci/run`` sets it);
without it the PostgreSQL variant is skipped with the reason. Migrations run once per
session into a template (a SQLite file copied per test; a PostgreSQL template database
cloned per test), so each test starts from a fresh, migrated schema quickly.
"""
from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from sqlalchemy.engine import Engine

from commtest.clock import UTC, FrozenClock
from commtest.db import make_engine, upgrade

PG_ENV = "COMMTEST_TEST_POSTGRES_URL"
REPO = Path(__file__).resolve().parent.parent


def _pg_base_url() -> str | None:
    url = os.environ.get(PG_ENV)
    if not url:
        return None
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


@pytest.fixture(autouse=True)
def _sandbox_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests let the sandbox answer for the officers, as the demo does (COMMTEST_SANDBOX);
    a test about the real-or-simulated rules unsets it."""
    monkeypatch.setenv("COMMTEST_SANDBOX", "true")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    eng = make_engine(f"sqlite:///{path}")
    upgrade(eng)
    eng.dispose()  # the last connection to close checkpoints the WAL into the file
    assert not path.with_name(path.name + "-wal").exists()
    return path


class _PgTemplates:
    def __init__(self, base: str) -> None:
        self.base = base
        self.admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
        self.template = f"commtest_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.created: list[str] = []
        with self.admin.connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{self.template}"')
        eng = make_engine(self.url_for(self.template))
        upgrade(eng)
        eng.dispose()

    def url_for(self, db: str) -> str:
        return sa.engine.make_url(self.base).set(database=db).render_as_string(hide_password=False)

    def fresh(self) -> str:
        name = f"commtest_t_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.created.append(name)
        return self.url_for(name)

    def drop(self, name_or_url: str) -> None:
        name = sa.engine.make_url(name_or_url).database if "://" in name_or_url else name_or_url
        with self.admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        for name in self.created:
            self.drop(name)
        self.drop(self.template)
        self.admin.dispose()


@pytest.fixture(scope="session")
def pg_templates() -> Iterator[_PgTemplates | None]:
    base = _pg_base_url()
    if not base:
        yield None
        return
    t = _PgTemplates(base)
    try:
        yield t
    finally:
        t.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """A fresh, migrated database URL: SQLite, and PostgreSQL when configured."""
    if request.param == "sqlite":
        path = tmp_path / "commtest.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    templates: _PgTemplates | None = request.getfixturevalue("pg_templates")
    if templates is None:
        pytest.skip(f"PostgreSQL not configured: set {PG_ENV}=postgresql://USER@HOST:PORT/DB to run these")
    url = templates.fresh()
    yield url
    templates.drop(url)


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A fresh, migrated SQLite database only (for tests about SQLite itself)."""
    path = tmp_path / "commtest.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 4, 14, 8, 0, tzinfo=UTC))


@pytest.fixture
def cli_env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for running the CLI against the test database (COMMTEST_* only)."""
    for key in list(os.environ):
        if key.startswith("COMMTEST_") and key != PG_ENV:
            monkeypatch.delenv(key, raising=False)
    env = {"COMMTEST_DATABASE_URL": db_url, "COMMTEST_REPORT_DIR": str(tmp_path / "reports"), "COMMTEST_SANDBOX": "true"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.fixture
def run_cli(cli_env: dict[str, str]):  # type: ignore[no-untyped-def]
    """Run ``commtest ARGS...`` in-process; returns click's Result (exit_code, stdout, stderr)."""
    from commtest.cli import main

    def _run(*args: str, input: str | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(_Main(main), list(args), input=input, catch_exceptions=False)

    return _run


class _Main:
    """Adapts ``commtest.cli.main`` (which calls sys.exit) to CliRunner."""

    def __init__(self, fn):  # type: ignore[no-untyped-def]
        self.fn = fn
        self.name = "commtest"

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[no-untyped-def]
        self.fn(list(args or []))
        return 0
