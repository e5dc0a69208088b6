"""The daemon's job on the 1st: the previous month's report, e-mailed to the reviewers."""
from __future__ import annotations

import socket
from datetime import datetime
from pathlib import Path

from commtest.cli.daemon_cmd import _monthly_job
from commtest.clock import UTC, FrozenClock
from commtest.context import AppContext
from commtest.db import make_engine, session_scope
from commtest.models import MonthlyReport
from commtest.settings import load_settings
from channels.email.devserver import DevSmtpServer
from sqlmodel import select


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_on_the_first_the_previous_month_is_generated_and_mailed_to_the_reviewers(db_url: str, tmp_path: Path) -> None:
    port = _free_port()
    settings = load_settings(database_url=db_url, smtp_host="127.0.0.1", smtp_port=port, smtp_security="none",
                             reviewers=["reviewer@benelux.example", "deputy@benelux.example"],
                             report_dir=tmp_path / "reports")
    app = AppContext(settings=settings, clock=FrozenClock(datetime(2026, 10, 1, 4, 0, tzinfo=UTC)))
    app._engine = make_engine(db_url)
    with DevSmtpServer("127.0.0.1", port, tmp_path / "mail") as server:
        _monthly_job(app)
        messages = server.messages()
    with session_scope(app.engine) as s:
        assert [r.month for r in s.exec(select(MonthlyReport)).all()] == ["2026-09"]
    # the local server keeps one copy per recipient
    assert len(messages) == 2 and len({str(m["Message-ID"]) for m in messages}) == 1
    msg = messages[0]
    assert "2026-09" in str(msg["Subject"])
    assert "reviewer@benelux.example" in str(msg["To"]) and "deputy@benelux.example" in str(msg["To"])
    assert any(part.get_content_type() == "application/pdf" for part in msg.iter_attachments())
    app.close()
