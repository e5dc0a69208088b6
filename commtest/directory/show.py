"""``directory show``: one readable table per organisation (full addresses: coordinators need them)."""
from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from rich.table import Table

from commtest.errors import NotFoundError


def render_directory(snap: dict[str, Any], organisation: str | None = None, *, width: int = 140) -> str:
    """Plain text (no colour codes) so it reads the same on a terminal, in a pipe or in a test."""
    orgs = snap["organisations"]
    if organisation is not None:
        orgs = [o for o in orgs if o["code"] == organisation.upper()]
        if not orgs:
            known = ", ".join(o["code"] for o in snap["organisations"]) or "none yet"
            raise NotFoundError(f"no organisation {organisation!r} in the directory; known: {known}")
    names = {f["code"]: f["name"] for f in snap["fields_of_work"]}
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, color_system=None, highlight=False)
    if not orgs:
        console.print("The directory is empty: commtest directory import FILE")
    for org in orgs:
        table = Table(
            title=f"{org['code']}  {org['name']}  ({org['country']}; {', '.join(org['languages'])}; {org['timezone']}"
            + (f"; {org['role']}" if org["role"] != "participant" else "")
            + ")",
            title_justify="left",
        )
        for column in ("field", "contact point", "languages", "endpoint", "status", "verified"):
            table.add_column(column, overflow="fold")
        for cp in org["contact_points"]:
            who = cp["name"] + (f", {cp['title']}" if cp["title"] else "") + f"\n[{cp['code']}]"
            if not cp["active"]:
                who += " (inactive)"
            field = names.get(cp["field"], cp["field"])
            langs = ", ".join(cp["languages"] or org["languages"])
            eps = cp["endpoints"] or [None]
            for i, e in enumerate(eps):
                first = i == 0
                table.add_row(
                    field if first else "",
                    who if first else "",
                    langs if first else "",
                    "-" if e is None else f"{e['kind']} {e['address']}" + (f" ({e['label']})" if e["label"] else ""),
                    "" if e is None else e["status"],
                    "" if e is None else (e["verified_at"] or "never")[:10],
                    end_section=i == len(eps) - 1,
                )
        if not org["contact_points"]:
            table.add_row("-", "no contact points", "", "", "", "")
        console.print(table)
    return out.getvalue()
