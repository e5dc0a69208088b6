"""``commtest user add|passwd|disable|enable|list`` and ``commtest token add|list|revoke``."""
from __future__ import annotations

import sys

import click

from .base import app_context, cli

ROLES = ("viewer", "coordinator", "reviewer", "admin")


@cli.group("user")
def user_group() -> None:
    """Users of the console and the CLI, and their roles."""


def _read_password(username: str, from_stdin: bool, *, required: bool) -> str | None:
    """The new password: one line of standard input with --password-stdin, else asked twice on
    the terminal; without a terminal, a usage error saying what to do."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not required:
        return None
    if not sys.stdin.isatty():
        raise click.UsageError("no terminal to ask the password on: pass it with --password-stdin")
    return str(click.prompt(f"new password for {username}", hide_input=True, confirmation_prompt="repeat it"))


@user_group.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the user may do.")
@click.option("--name", "display_name", default="", help="Display name.")
@click.option("--email", default=None, help="E-mail address.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (one line).")
def user_add(username: str, role: str, display_name: str, email: str | None, password_stdin: bool) -> None:
    """Create USERNAME with a role; the password (if any) is stored as an Argon2id hash.

    Without --password-stdin the user has no password yet: `commtest user passwd` sets one."""
    from commtest.users import add_user

    password = _read_password(username, password_stdin, required=False)
    app = app_context()
    user = add_user(app.engine, username, role, app.clock, display_name=display_name, email=email, password=password)
    hint = "" if user.has_password else f"; set a password with `commtest user passwd {user.username}`"
    click.echo(f"user {user.username} added with role {user.role.value}{hint}")


@user_group.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input (one line).")
def user_passwd(username: str, password_stdin: bool) -> None:
    """Set USERNAME's password (asked twice on a terminal). Their console sessions end and a
    sign-in lock-out is lifted."""
    from commtest.users import get_user, set_password

    app = app_context()
    get_user(app.engine, username)  # an unknown name fails before the password is asked
    password = _read_password(username, password_stdin, required=True)
    assert password is not None
    user = set_password(app.engine, username, password)
    click.echo(f"password of {user.username} set; their console sessions were ended")


@user_group.command("disable")
@click.argument("username")
def user_disable(username: str) -> None:
    """Disable USERNAME: their sessions end now and their API tokens are refused."""
    from commtest.users import set_active

    user = set_active(app_context().engine, username, False)
    click.echo(f"user {user.username} disabled")


@user_group.command("enable")
@click.argument("username")
def user_enable(username: str) -> None:
    """Enable USERNAME again."""
    from commtest.users import set_active

    user = set_active(app_context().engine, username, True)
    click.echo(f"user {user.username} enabled")


@user_group.command("list")
def user_list() -> None:
    """List the users and their roles."""
    from commtest.users import list_users

    users = list_users(app_context().engine)
    if not users:
        click.echo("no users; `commtest user add NAME --role reviewer` creates one")
        return
    width = max(len(u.username) for u in users)
    for u in users:
        state = "" if u.active else "  (disabled)"
        nopass = "" if u.has_password else "  (no password yet)"
        click.echo(f"{u.username.ljust(width)}  {u.role.value:<11}  {u.display_name}  {u.email or ''}{state}{nopass}")


# ------------------------------------------------------------------------- API tokens
@cli.group("token")
def token_group() -> None:
    """Personal API tokens (for the JSON API under /api/v1)."""


@token_group.command("add")
@click.argument("username")
@click.option("--name", required=True, help="What the token is for, e.g. 'crisis platform'.")
def token_add(username: str, name: str) -> None:
    """Create an API token for USERNAME; it is printed once and acts with the user's role."""
    from commtest.access import create_token

    from .runview import whoami

    app = app_context()
    info, raw = create_token(app.engine, username, name, app.clock.now(), actor=f"cli:{whoami()}")
    click.echo(f"token {info.id} for {info.username} ({info.name}); keep it now, it is not shown again:")
    click.echo(raw)


@token_group.command("list")
@click.argument("username", required=False)
def token_list(username: str | None) -> None:
    """List the API tokens (of USERNAME), never the secrets."""
    from commtest.access import list_tokens

    tokens = list_tokens(app_context().engine, username)
    if not tokens:
        click.echo("no API tokens; `commtest token add USER --name WHAT` creates one")
        return
    for t in tokens:
        state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
        created = f"{t.created_at:%Y-%m-%d %H:%M}" if t.created_at else ""
        click.echo(f"{t.id:>4}  {t.username:<16} {t.prefix}…  {t.name:<30} created {created}  {state}")


@token_group.command("revoke")
@click.argument("token_id", type=int)
def token_revoke(token_id: int) -> None:
    """Revoke API token TOKEN_ID (as `commtest token list` numbers them)."""
    from commtest.access import revoke_token

    from .runview import whoami

    app = app_context()
    info = revoke_token(app.engine, token_id, app.clock.now(), actor=f"cli:{whoami()}")
    click.echo(f"token {info.id} of {info.username} ({info.name}) revoked")
