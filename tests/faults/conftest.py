"""The fault suite: kill -9 of the leader on two replicas, provider faults, a PostgreSQL
restart, DST and wall-clock jumps. Marked ``faults`` and left out of ``make test``
(pyproject's addopts); ``make faults`` runs it, and CI runs it after the tests.

At the end it prints one line, e.g.
``RESULT kills=104 attempts=5210 duplicates=0 lost_acks=0 acks_2xx=812 ... failed=0 seed=2027``.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from channels.email.devserver import DevSmtpServer
from tests.faults import figures
from tests.faults.replicas import free_port


@pytest.fixture
def smtp_fake(tmp_path: Path) -> Iterator[DevSmtpServer]:
    """A real SMTP server run by the test process; its Maildir keeps every message it was handed."""
    server = DevSmtpServer("127.0.0.1", free_port(), tmp_path / "Maildir")
    server.start()
    yield server
    server.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    if not figures.recorded():
        return  # the fault tests did not run (make test collects and deselects them)
    failed = len(terminalreporter.stats.get("failed", [])) + len(terminalreporter.stats.get("error", []))
    terminalreporter.write_line(figures.result_line(failed))
