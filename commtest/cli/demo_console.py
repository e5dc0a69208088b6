"""The console part of ``commtest demo``: a demo coordinator with a random password (printed
once), and on a terminal a pause before the test starts and after it ends, so the whole run
can be watched live on the board."""
from __future__ import annotations

import secrets
import select
import sys

import click

from commtest.context import AppContext

DEMO_USER = "demo-coordinator"


def demo_login(app: AppContext) -> str:
    """Create the demo coordinator; returns its password (a fresh database each demo)."""
    from commtest.users import add_user

    password = secrets.token_urlsafe(12)
    add_user(app.engine, DEMO_USER, "coordinator", app.clock, display_name="Demo coordinator (fictional)",
             password=password)
    return password


def announce(base_url: str, password: str) -> None:
    click.echo(f"   console: {base_url}/console/  (sign in as {DEMO_USER}, password {password})")


def _wait_for_enter(prompt: str, seconds: float | None) -> None:
    if not sys.stdin.isatty():
        return
    click.echo(prompt)
    if seconds is None:
        sys.stdin.readline()
        return
    ready, _, _ = select.select([sys.stdin], [], [], seconds)
    if ready:
        sys.stdin.readline()


def before_the_run() -> None:
    _wait_for_enter("   open the console now to watch the run live; press Enter to start it (it starts in 30 s anyway)",
                    30)


def after_the_run(base_url: str) -> None:
    _wait_for_enter(f"   the console stays up at {base_url}/console/ to look around; press Enter to stop it", None)
