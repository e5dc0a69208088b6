"""The ``commtest`` command line.

Exit codes (CONVENTIONS.md): 0 done, 1 the job failed, 2 the input or the command line
was wrong. Every command group lives in its own module; heavy packages (scheduler,
reports, web) are imported inside the commands that need them, so the kernel does not
depend on them.
"""
from __future__ import annotations

import logging
import sys
from typing import Any

import click

from commtest.errors import CommtestError

from .base import cli

# Command groups register themselves on ``cli`` when imported.
from . import config_cmd as _config_cmd  # noqa: F401,E402
from . import db_cmd as _db_cmd  # noqa: F401,E402
from . import directory_cmd as _directory_cmd  # noqa: F401,E402
from . import playbook_cmd as _playbook_cmd  # noqa: F401,E402
from . import daemon_cmd as _daemon_cmd  # noqa: F401,E402
from . import run_cmd as _run_cmd  # noqa: F401,E402
from . import schedule_cmd as _schedule_cmd  # noqa: F401,E402
from . import runs_cmd as _runs_cmd  # noqa: F401,E402
from . import report_cmd as _report_cmd  # noqa: F401,E402
from . import demo_cmd as _demo_cmd  # noqa: F401,E402
from . import user_cmd as _user_cmd  # noqa: F401,E402
from . import channel_cmd as _channel_cmd  # noqa: F401,E402

__all__ = ["cli", "main"]


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point: turns a CommtestError into its message and exit code."""
    try:
        rv = cli.main(args=argv, prog_name="commtest", standalone_mode=False)
        # Without standalone mode click *returns* the code of ctx.exit(n) instead of exiting.
        if isinstance(rv, int) and rv != 0:
            sys.exit(rv)
        return rv
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except CommtestError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
