"""The audit log: every coordinator action (sign-ins, failed sign-ins, schedule changes, runs
started or aborted by a person, directory edits, corrections, tokens, calendar links,
sign-offs), newest first, with who did it."""
from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import col, select

from commtest import events as ev
from commtest.db import read_session
from commtest.masking import mask_in_text
from commtest.models import Event
from commtest.vocabulary import name_of
from web.console_auth import ConsoleContext

PAGE = 50
_PEOPLE = (Event.actor.like("console:%") | Event.actor.like("api:%") | Event.actor.like("cli:%"))  # type: ignore[attr-defined]
_HIDDEN = ("reason", "source", "user", "by", "locked_until")


def audit_filter() -> sa.ColumnElement[bool]:
    """Audit kinds, and runs started or aborted or answered by a person."""
    person_run = col(Event.kind).in_((ev.RUN_PLANNED, ev.RUN_ABORTED, ev.PING_ACKED)) & _PEOPLE
    return col(Event.kind).in_(ev.AUDIT_KINDS) | person_run


def router(ctx: ConsoleContext) -> APIRouter:
    r = APIRouter()

    @r.get("/console/audit", response_class=HTMLResponse)
    def audit(request: Request, page: int = 1) -> Response:
        lang = ctx.lang(request)
        session = ctx.session(request)
        if session is None:
            return ctx.login_redirect(request, lang)
        page = max(1, page)
        t = ctx.texts(lang)
        with read_session(ctx.engine) as s:
            rows = s.exec(select(Event).where(audit_filter()).order_by(col(Event.id).desc())
                          .limit(PAGE + 1).offset((page - 1) * PAGE)).all()
        entries = []
        for e in rows[:PAGE]:
            data = e.data or {}
            who = e.actor.split(":", 1)[1] if ":" in e.actor else e.actor
            detail = ", ".join(f"{k}: {mask_in_text(str(v))}" for k, v in data.items()
                               if k not in _HIDDEN and v not in (None, "", [], {}))
            if data.get("reason"):
                detail = (detail + "; " if detail else "") + mask_in_text(str(data["reason"]))
            entries.append({"at": t.when(e.at, seconds=True), "who": who, "via": e.actor.split(":", 1)[0],
                            "what": name_of("event", e.kind, t), "run": e.run_id, "source": data.get("source") or "",
                            "detail": detail[:300], "kind": e.kind})
        return ctx.render(request, "console_audit.html", lang, title=t("Audit log"), session=session, entries=entries,
                          page=page, more=len(rows) > PAGE)

    return r
