"""``commtest report test|monthly|directory|sign|verify``.

Each report command writes one format (default html) to ``-o FILE`` or under
``settings.report_dir``, and prints the path(s) it wrote.
"""
from __future__ import annotations

from pathlib import Path

import click

from .base import app_context, cli

FORMATS = ("html", "pdf", "csv", "json", "vcard")
LANGS = ("en", "nl", "fr", "de")

_format = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True,
    help="vcard only for the directory; csv writes one file per table beside FILE.",
)
_lang = click.option("--lang", type=click.Choice(LANGS), default="en", show_default=True, help="Language of the report.")
_output = click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), default=None,
                       help="File to write (default: under the report_dir setting).")


@cli.group("report")
def report_group() -> None:
    """Test reports, monthly reports (with sign-off) and the updated contact directory."""


def _write(report: object, kind: str, base_name: str, fmt: str, lang: str, output: Path | None) -> None:
    from reports.render import check_format, default_path, render_to

    check_format(kind, fmt)  # before any work: a wrong combination is a command-line error
    app = app_context()
    path = output or default_path(Path(app.settings.report_dir) / base_name, fmt)
    for written in render_to(report, fmt, path, lang, app.settings.timezone):  # type: ignore[arg-type]
        click.echo(str(written))


@report_group.command("test")
@click.argument("run_id", type=int)
@_format
@_lang
@_output
def report_test(run_id: int, fmt: str, lang: str, output: Path | None) -> None:
    """The test report of run RUN_ID."""
    from reports.render import check_format
    from reports.test_report import build_test_report

    check_format("test", fmt)
    app = app_context()
    report = build_test_report(app.engine, run_id, clock=app.clock, stale_after_days=app.settings.verified_max_age_days)
    _write(report, "test", f"run-{run_id}", fmt, lang, output)
    if report.simulated:
        click.echo(f"run {run_id}: SIMULATED — {report.summary.simulated} check(s) were answered by a sandbox; "
                   "not evidence", err=True)


@report_group.command("monthly")
@click.argument("month")
@_format
@_lang
@_output
def report_monthly(month: str, fmt: str, lang: str, output: Path | None) -> None:
    """The monthly report of MONTH (YYYY-MM): the signed one, or a fresh draft."""
    from reports.monthly import generate_monthly, monthly_view
    from reports.render import check_format

    check_format("monthly", fmt)
    app = app_context()
    row = generate_monthly(app.engine, month, app.clock, app.settings.timezone,
                           stale_after_days=app.settings.verified_max_age_days)
    _write(monthly_view(row), "monthly", f"monthly-{month}", fmt, lang, output)
    click.echo(f"{month}: {row.status}" + (f", signed by {row.signed_by}" if row.signed_by else ""), err=True)


@report_group.command("directory")
@_format
@_lang
@_output
def report_directory(fmt: str, lang: str, output: Path | None) -> None:
    """Publish a new edition of the contact directory, with the changes since the previous one."""
    from reports.directory_report import publish_directory
    from reports.render import check_format

    check_format("directory", fmt)
    app = app_context()
    report = publish_directory(app.engine, app.clock)
    _write(report, "directory", f"directory-{report.edition_id}", fmt, lang, output)
    if not report.new_edition:
        click.echo(f"nothing changed since edition {report.edition_id}: no new edition was published", err=True)


@report_group.command("sign")
@click.argument("month")
@click.option("--user", "username", required=True, help="Who signs: a user with role reviewer or admin.")
@click.option("--comment", required=True, help="The reviewer's comment, stored with the signature.")
@click.option("--password-stdin", is_flag=True, help="Read the signer's password from standard input (one line).")
@click.option("--include-simulated", is_flag=True,
              help="Sign a month that holds simulated checks (a sandbox answered); the signature says so.")
def report_sign(month: str, username: str, comment: str, password_stdin: bool, include_simulated: bool) -> None:
    """Sign off the monthly report of MONTH; its figures are frozen from then on.

    Only a month that is over (in the report's time zone) and whose runs are all settled can be
    signed. The signer proves who they are with their password (asked for, or from stdin)."""
    import sys

    from commtest.errors import PermissionDenied
    from commtest.users import check_password
    from reports.monthly import sign_monthly

    app = app_context()
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = click.prompt(f"password of {username}", hide_input=True)
    else:
        raise click.UsageError("no terminal to ask the password on: pass it with --password-stdin")
    if not check_password(app.engine, username, password):
        raise PermissionDenied(f"wrong user name or password for {username!r}; nothing was signed "
                               f"(an administrator sets a password with `commtest user passwd {username}`)")
    row = sign_monthly(app.engine, month, username, comment, app.clock, app.settings.timezone,
                       include_simulated=include_simulated, stale_after_days=app.settings.verified_max_age_days)
    from zoneinfo import ZoneInfo

    local = row.signed_at.astimezone(ZoneInfo(app.settings.timezone)) if row.signed_at else None
    click.echo(f"{month}: signed by {row.signer_name or row.signed_by} at {local:%Y-%m-%d %H:%M %Z}; "
               f"sha256 {row.content_hash}" + ("; includes simulated checks" if row.includes_simulated else ""))


@report_group.command("verify")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def report_verify(file: Path) -> None:
    """Recompute every number of FILE (a report written with --format json) from the event log."""
    from reports.verify import verify_report

    from reports.verify import signed_drift

    from reports.verify import load_report_file

    engine = app_context().engine
    differences = verify_report(engine, file)
    if not differences:
        drift = signed_drift(engine, file)
        data = load_report_file(file)
        if data.get("status") == "signed" and not drift:
            click.echo(f"{file}: signed and unchanged: every number and the signature match the frozen report")
        elif drift:
            click.echo(f"{file}: signed and unchanged: every number and the signature match the frozen report "
                       f"({drift} number(s) would differ today: events for the month arrived after the signature)")
        else:
            click.echo(f"{file}: every number matches the event log")
        return
    from reports.verify import ReportMismatch

    for d in differences:
        click.echo(str(d))
    raise ReportMismatch(f"{file}: {len(differences)} value(s) differ from the event log")
