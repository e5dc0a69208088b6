"""The root click group and helpers shared by the command modules."""
from __future__ import annotations

import logging
from typing import Any

import click

from commtest.context import AppContext
from commtest.settings import load_settings


class LazyContext:
    """Settings are validated when the first command needs them, not at import."""

    def __init__(self) -> None:
        self._app: AppContext | None = None

    def get(self) -> AppContext:
        if self._app is None:
            settings = load_settings()
            logging.basicConfig(
                level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
            )
            if settings.log_level.upper() != "DEBUG":
                for noisy in ("alembic", "weasyprint", "fontTools"):
                    logging.getLogger(noisy).setLevel(logging.WARNING)
            self._app = AppContext(settings=settings)
        return self._app


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="commtest")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """commtest: scheduled, playbook-driven communication tests between crisis centres."""
    lazy = LazyContext()
    ctx.obj = lazy
    ctx.call_on_close(lambda: lazy._app.close() if lazy._app else None)


def app_context() -> AppContext:
    """The AppContext of the running command."""
    ctx = click.get_current_context()
    obj: Any = ctx.find_object(LazyContext)
    assert obj is not None
    app: AppContext = obj.get()
    return app
