"""``commtest check-config``."""
from __future__ import annotations

import json

import click

from .base import app_context, cli

_NOTES = {
    "sandbox": "SIMULATED: the sandbox answers for the officers; not evidence",
    "not configured": "a playbook that needs it is refused",
}


@cli.command("check-config")
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
def check_config(as_json: bool) -> None:
    """Validate the settings and print them, secrets masked, and say of each channel kind
    whether it is real, sandbox or not configured."""
    from channels.registry import check_channel_providers
    from commtest.settings import CHANNEL_KINDS

    app = app_context()
    check_channel_providers(app.settings)
    values = app.settings.masked()
    kinds = {kind: app.settings.channel_status(kind) for kind in CHANNEL_KINDS}
    if as_json:
        click.echo(json.dumps({**values, "channel_status": kinds}, indent=2, sort_keys=True, default=str))
    else:
        width = max(len(k) for k in values)
        for key, value in values.items():
            click.echo(f"{key.ljust(width)}  {value}")
        click.echo("\nchannel kinds:")
        for kind, status in kinds.items():
            providers = ", ".join(app.settings.providers(kind)) if status == "real" else ""
            note = _NOTES.get(status)
            click.echo(f"  {kind.ljust(7)} {status}" + (f" ({providers})" if providers else "")
                       + (f"  — {note}" if note else ""))
    click.echo("configuration OK", err=True)
