"""``commtest check-config``."""
from __future__ import annotations

import json

import click

from .base import app_context, cli


@cli.command("check-config")
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
def check_config(as_json: bool) -> None:
    """Validate the settings and print them, secrets masked."""
    from channels.registry import check_channel_providers

    app = app_context()
    check_channel_providers(app.settings)
    values = app.settings.masked()
    if as_json:
        click.echo(json.dumps(values, indent=2, sort_keys=True, default=str))
    else:
        width = max(len(k) for k in values)
        for key, value in values.items():
            click.echo(f"{key.ljust(width)}  {value}")
    click.echo("configuration OK", err=True)
