"""``commtest directory import|export|show|check``."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal, cast

import click

from commtest.db import read_session

from .base import app_context, cli


@cli.group("directory")
def directory_group() -> None:
    """The contact directory: organisations, fields of work, contact points, endpoints."""


@directory_group.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--replace", is_flag=True, help="Make the database equal to the file (default: merge by code).")
@click.option("--dry-run", is_flag=True, help="Validate and count the changes, write nothing.")
def directory_import(file: Path, replace: bool, dry_run: bool) -> None:
    """Import FILE (.yaml, .yml or .csv): all or nothing, every problem listed with its line."""
    from commtest.directory import import_directory

    app = app_context()
    summary = import_directory(app.engine, file, replace=replace, dry_run=dry_run,
                               max_bytes=app.settings.max_directory_bytes)
    click.echo(summary.render())


@directory_group.command("export")
@click.option("--format", "fmt", type=click.Choice(["yaml", "csv"]), default="yaml", show_default=True)
@click.option("-o", "--output", default="-", show_default=True, help="File to write, or - for standard output.")
def directory_export(fmt: str, output: str) -> None:
    """Write the directory in a form `directory import` reads back unchanged."""
    from commtest.directory import export_directory

    text = export_directory(app_context().engine, cast(Literal["yaml", "csv"], fmt))
    if output == "-":
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


@directory_group.command("show")
@click.argument("organisation", required=False)
def directory_show(organisation: str | None) -> None:
    """Show the directory (or one ORGANISATION) as tables, with full addresses."""
    from commtest.directory import render_directory, snapshot

    with read_session(app_context().engine) as session:
        snap = snapshot(session)
    click.echo(render_directory(snap, organisation), nl=False)


@directory_group.command("check")
@click.option("--max-age-days", type=click.IntRange(min=1), default=None,
              help="Flag endpoints not verified for longer (default: setting verified_max_age_days).")  # fmt: skip
@click.option("--playbook-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Playbooks whose participants and channels must be reachable (default: setting playbook_dir).")  # fmt: skip
def directory_check(max_age_days: int | None, playbook_dir: Path | None) -> None:
    """List the gaps (missing contact points or channels, stale or bad endpoints); exit 1 if any."""
    from commtest.directory import check_directory

    app = app_context()
    folder = playbook_dir or app.settings.playbook_dir
    requirements, note = playbook_requirements(folder, max_bytes=app.settings.max_playbook_bytes)
    if note:
        click.echo(note, err=True)
    max_age = max_age_days or app.settings.verified_max_age_days
    with read_session(app.engine) as session:
        gaps = check_directory(session, requirements, now=app.clock.now(), max_age_days=max_age)
    for gap in gaps:
        click.echo(f"{gap.kind}: {gap}")
    if gaps:
        click.echo(f"{len(gaps)} gap(s) found", err=True)
        sys.exit(1)
    click.echo(f"no gaps ({len(requirements)} playbook requirement(s) checked, endpoints verified within {max_age} days)")


def playbook_requirements(folder: Path, *, max_bytes: int | None = None) -> tuple[list[Any], str]:
    """Requirements from the playbooks in ``folder``, and a note for the operator (or "").

    ``playbooks`` is imported here, not at module level: the kernel does not depend on it.
    """
    from commtest.directory import Requirement

    try:
        from playbooks.store import load_folder  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return [], "note: playbook requirements unavailable (playbooks.store cannot be imported); checked endpoints only"
    if not folder.is_dir():
        return [], f"note: playbook folder {folder} does not exist; checked endpoints only"
    loaded = load_folder(folder) if max_bytes is None else load_folder(folder, max_bytes=max_bytes)
    out: list[Requirement] = []
    for playbook in loaded.valid:
        spec = playbook.spec
        for participant in spec.participants:
            for field in participant.fields:
                # Each step pings every participant's contact point on its channel (those it names, if it does).
                channels = frozenset(step.channel for step in spec.steps if step.pings(participant.organisation))
                out.append(Requirement(participant.organisation, field, channels, spec.id))
            for step in spec.steps:
                if step.escalate and step.escalate.field and step.pings(participant.organisation):
                    # the escalation reaches another field of work
                    out.append(Requirement(participant.organisation, step.escalate.field,
                                           frozenset({step.channel}), spec.id))  # fmt: skip
    invalid = getattr(loaded, "invalid", None) or []
    note = f"note: {len(invalid)} playbook(s) in {folder} are invalid and were not checked" if invalid else ""
    return out, note
