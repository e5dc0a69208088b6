"""``commtest playbook``: validate, list and show playbooks.

Commands that need playbooks sync the playbook folder first (``sync_playbooks``), so the
database always holds what the coordinators last saved; invalid files are warned about on
stderr and never replace the last good revision.
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from sqlmodel import func, select

from commtest.context import AppContext
from commtest.db import read_session
from commtest.errors import CommtestError, Problem, ValidationFailed
from commtest.models import Playbook, PlaybookRevision, Schedule

from .base import app_context, cli

__all__ = ["PlaybookInvalid", "playbook", "sync_playbooks"]


class PlaybookInvalid(CommtestError):
    """``playbook validate`` found problems (they are printed already)."""

    exit_code = 2


def sync_playbooks(app: AppContext, *, quiet: bool = False, deadline: float | None = None) -> list[Path]:
    """Sync ``settings.playbook_dir`` into the database (every command that needs playbooks
    does this first); warn about invalid files on stderr unless ``quiet``. With a ``deadline``
    (``time.monotonic()``), returns the files not read by then (left as they were)."""
    from playbooks.store import sync_folder

    report = sync_folder(app.engine, app.settings.playbook_dir, app.clock, max_bytes=app.settings.max_playbook_bytes,
                         deadline=deadline)
    if quiet:
        return report.deferred
    for path, failure in report.invalid:
        click.echo(f"warning: {path} is invalid and was not loaded (its last good revision stays in use):", err=True)
        for problem in failure.problems:
            click.echo(f"  {problem}", err=True)
    return report.deferred


@cli.group()
def playbook() -> None:
    """Playbooks (draaiboeken): validate files, list and show what is loaded."""


@playbook.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--no-directory", is_flag=True,
              help="Check the templates with sample values only, not for the contact points of the directory.")
def validate(files: tuple[Path, ...], no_directory: bool) -> None:
    """Check playbook FILES (or folders of them); nothing is written.

    Every template is rendered with sample values, then for every contact point that the
    directory (in the database) gives the participants, in the language each would get.
    Prints every problem as FILE:LINE:COL: field: message and exits with 2 if there is any.
    """
    from playbooks.store import LoadedPlaybook, load_file, load_folder

    app = app_context()
    max_bytes = app.settings.max_playbook_bytes
    groups: list[tuple[list[LoadedPlaybook], list[ValidationFailed]]] = []  # per argument, in order
    for path in files:
        if path.is_dir():
            folder = load_folder(path, max_bytes=max_bytes)
            groups.append((folder.valid, [failure for _, failure in folder.invalid]))
        else:
            try:
                groups.append(([load_file(path, max_bytes=max_bytes)], []))
            except ValidationFailed as exc:
                groups.append(([], [exc]))
    loaded = [item for valid, _ in groups for item in valid]
    against = {} if no_directory or not loaded else _directory_problems(app, loaded)
    failed = False
    for valid, invalid in groups:
        for item in valid:
            problems = against.get(item.path, [])
            if not problems:
                click.echo(f"OK {item.spec.id} {item.content_hash[:12]} {item.path}")
            failed = failed or bool(problems)
            for problem in problems:
                click.echo(str(problem))
        for failure in invalid:
            failed = True
            for problem in failure.problems:
                click.echo(str(problem))
    if failed:
        # An error (not click's Exit) so that every entry point turns it into exit code 2.
        raise PlaybookInvalid("invalid playbook(s): fix the problems above; nothing was loaded")


def _directory_problems(app: AppContext, loaded: list[Any]) -> dict[Path, list[Problem]]:
    """Render each playbook's templates for the directory's contact points (see
    ``scheduler.template_check``); notes on stderr say what could not be checked."""
    from sqlalchemy.exc import SQLAlchemyError

    from playbooks.loader import template_problem
    from scheduler.template_check import directory_is_empty, render_for_directory

    out: dict[Path, list[Problem]] = {}
    try:
        with read_session(app.engine) as session:
            if directory_is_empty(session):
                click.echo("note: cannot check templates against the directory: it is empty; "
                           "import one with `commtest directory import`", err=True)
                return out
            for item in loaded:
                result = render_for_directory(session, item.spec, public_base_url=app.settings.public_base_url,
                                              now=app.clock.now())
                if result.missing:
                    click.echo(f"note: {item.path}: no active contact point in the directory for "
                               f"{', '.join(result.missing)}; their templates were checked with sample values only",
                               err=True)
                out[item.path] = [
                    template_problem(item.text, str(item.path), ("templates", f.template, f.language, f.field),
                                     f.describe(), f.line)
                    for f in result.failures
                ]
    except (CommtestError, SQLAlchemyError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        click.echo(f"note: cannot check templates against the directory: {first}", err=True)
    return out


@playbook.command("list")
def list_() -> None:
    """Sync the playbook folder, then list the playbooks in the database."""
    app = app_context()
    sync_playbooks(app)
    with read_session(app.engine) as session:
        playbooks = session.exec(select(Playbook).order_by(Playbook.id)).all()
        rows = []
        for pb in playbooks:
            current = session.get(PlaybookRevision, pb.current_revision_id) if pb.current_revision_id else None
            count = session.exec(
                select(func.count()).select_from(PlaybookRevision).where(PlaybookRevision.playbook_id == pb.id)
            ).one()
            schedules = session.exec(select(Schedule).where(Schedule.playbook_id == pb.id).order_by(Schedule.key)).all()
            sched = ",".join(s.key + (" (paused)" if s.paused else "") for s in schedules) or "-"
            error = (pb.last_error or "").splitlines()[0] if pb.last_error else ""
            rows.append(
                (
                    pb.id,
                    current.title if current else "-",
                    current.owner if current else "-",
                    current.content_hash[:12] if current else "-",
                    str(count),
                    sched,
                    error,
                )
            )
    if not rows:
        click.echo(f"no playbooks in {app.settings.playbook_dir}")
        return
    header = ("ID", "TITLE", "OWNER", "REVISION", "REVS", "SCHEDULES", "LAST ERROR")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        click.echo("  ".join([*cells, row[-1]]).rstrip())


@playbook.command()
@click.argument("playbook_id")
@click.option("--revision", "revision_hash", help="Show this revision (content hash or its first characters).")
def show(playbook_id: str, revision_hash: str | None) -> None:
    """Show a playbook: participants, steps, targets, schedules and template languages."""
    from commtest.i18n import format_duration as human
    from playbooks.store import current_revision, find_revision

    app = app_context()
    sync_playbooks(app)
    with read_session(app.engine) as session:
        if revision_hash:
            revision, spec = find_revision(session, playbook_id, revision_hash)
        else:
            revision, spec = current_revision(session, playbook_id)
        row = session.get(Playbook, playbook_id)
        schedules = {
            s.key: s for s in session.exec(select(Schedule).where(Schedule.playbook_id == playbook_id)).all()
        }
        revisions = session.exec(
            select(PlaybookRevision)
            .where(PlaybookRevision.playbook_id == playbook_id)
            .order_by(PlaybookRevision.id)  # type: ignore[arg-type]
        ).all()
    out = click.echo
    out(f"{spec.id}: {spec.title}")
    out(f"  owner: {spec.owner}   time zone: {spec.timezone}   mode: {spec.mode}")
    out(f"  revision: {revision.content_hash[:12]} ({revision.source_path}), created {revision.created_at:%Y-%m-%d %H:%M} UTC")
    if row is not None and row.last_error:
        out(f"  last error: {row.last_error.splitlines()[0]}")
    out("participants:")
    for p in spec.participants:
        out(f"  {p.organisation}: {', '.join(p.fields)}")
    def format_duration(value: timedelta) -> str:  # one duration style everywhere: "3 min 16 s"
        return human(value.total_seconds() * 1000, "en")

    out("steps:")
    initial = {s.id for s in spec.initial_steps()}
    for step in spec.steps:
        starts = f"starts at +{format_duration(step.start_after)}" if step.id in initial else "on escalation only"
        retries = f", {step.retries} retr{'y' if step.retries == 1 else 'ies'} after {format_duration(step.retry_interval)}" if step.retries else ""
        esc = spec.escalation_of(step)
        escalates = ""
        if esc:
            escalates = ", escalates to " + " ".join(
                part for part in (f"step {esc.step}" if esc.step else "", f"field {esc.field}" if esc.field else "") if part
            )
        only = f", only {', '.join(step.organisations)}" if step.organisations else ""
        out(f"  {step.id}: {step.channel}, template {step.template}, {starts}, "
            f"ack within {format_duration(step.ack_deadline)}{retries}{escalates}{only}")
    out("targets:")
    for channel, target in spec.targets.items():
        out(f"  {channel}: {format_duration(target)}")
    if not spec.targets:
        out("  none")
    out("schedules:")
    for sc in spec.schedules:
        when = f"cron '{sc.cron}'" if sc.cron else "months " + ",".join(str(m) for m in sc.months or [])
        if sc.window:
            when += f", window {','.join(sc.window.days)} {sc.window.start:%H:%M}-{sc.window.end:%H:%M}"
        kind = "announced" if sc.announced else "unannounced"
        db_row = schedules.get(sc.key)
        state = " (paused)" if db_row is not None and db_row.paused else ""
        out(f"  {sc.key}: {when} {sc.timezone or spec.timezone}, {kind}{state}")
    if not spec.schedules:
        out("  none")
    out("templates:")
    for name, languages in spec.templates.items():
        out(f"  {name}: {', '.join(languages)}")
    out(f"revisions: {len(revisions)}")
    for rev in revisions:
        marker = "*" if rev.id == revision.id else " "
        out(f" {marker} {rev.content_hash[:12]} {rev.created_at:%Y-%m-%d %H:%M} UTC")
