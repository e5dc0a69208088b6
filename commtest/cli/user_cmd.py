"""``commtest user add|list``."""
from __future__ import annotations

import sys

import click

from .base import app_context, cli

ROLES = ("viewer", "coordinator", "reviewer", "admin")


@cli.group("user")
def user_group() -> None:
    """Users of the console and the CLI, and their roles."""


@user_group.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the user may do.")
@click.option("--name", "display_name", default="", help="Display name.")
@click.option("--email", default=None, help="E-mail address.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (one line).")
def user_add(username: str, role: str, display_name: str, email: str | None, password_stdin: bool) -> None:
    """Create USERNAME with a role; the password (if any) is stored as an Argon2id hash."""
    from commtest.users import add_user

    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    app = app_context()
    user = add_user(app.engine, username, role, app.clock, display_name=display_name, email=email, password=password)
    click.echo(f"user {user.username} added with role {user.role.value}")


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
        state = "" if u.active else "  (deactivated)"
        click.echo(f"{u.username.ljust(width)}  {u.role.value:<11}  {u.display_name}  {u.email or ''}{state}")
