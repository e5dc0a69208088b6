"""Playbooks in the console: the list, each playbook's revisions with the diff to the one
before, and uploading (validation errors shown, every one with its line)."""
from __future__ import annotations

import difflib

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import col, func, select
from starlette.concurrency import run_in_threadpool

from commtest.db import read_session
from commtest.errors import ValidationFailed
from commtest.i18n import N_
from commtest.models import Playbook, PlaybookRevision
from commtest.users import OPERATING_ROLES
from web.console_auth import ConsoleContext, Session, actor_of, may_operate
from web.playbook_upload import store_upload, validate_text


def diff_lines(old: str, new: str, old_name: str, new_name: str) -> list[tuple[str, str]]:
    """(css class, line) of a unified diff: added, removed, hunk or context."""
    out = []
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), old_name, new_name, lineterm="", n=3):
        kind = ("hunk" if line.startswith("@@") else "head" if line.startswith(("---", "+++"))
                else "added" if line.startswith("+") else "removed" if line.startswith("-") else "context")
        out.append((kind, line))
    return out


def router(ctx: ConsoleContext) -> APIRouter:
    r = APIRouter()

    def listing(request: Request, lang: str, session: Session, status: int = 200, *, problems: list[str] | None = None,
                text: str = "", message: str = "") -> HTMLResponse:
        t = ctx.texts(lang)
        with read_session(ctx.engine) as s:
            counts = dict(s.exec(select(PlaybookRevision.playbook_id, func.count()).group_by(
                PlaybookRevision.playbook_id)).all())
            rows = []
            for pb in s.exec(select(Playbook).order_by(col(Playbook.id))).all():
                rev = s.get(PlaybookRevision, pb.current_revision_id) if pb.current_revision_id else None
                rows.append({"id": pb.id, "title": rev.title if rev else "", "hash": rev.content_hash[:12] if rev else "",
                             "revisions": counts.get(pb.id, 0), "error": pb.last_error or "",
                             "seen": t.when(pb.last_seen_at) if pb.last_seen_at else "–"})
        return ctx.render(request, "console_playbooks.html", lang, status, title=t("Playbooks"), session=session,
                          playbooks=rows, problems=problems or [], text=text, message=message,
                          max_bytes=ctx.settings.api_max_body_bytes)

    @r.get("/console/playbooks", response_class=HTMLResponse)
    def playbooks(request: Request) -> Response:
        lang = ctx.lang(request)
        session = ctx.session(request)
        if session is None:
            return ctx.login_redirect(request, lang)
        return listing(request, lang, session)

    @r.post("/console/playbooks", response_class=HTMLResponse)
    async def upload(request: Request) -> Response:
        lang = ctx.lang(request)
        session, form, refusal = await ctx.posted(request, lang, ctx.settings.api_max_body_bytes)
        if refusal is not None or session is None:
            return refusal or ctx.must_sign_in(request, lang)
        if not may_operate(session):
            return ctx.forbidden(request, lang, session, OPERATING_ROLES, N_("upload a playbook"))
        t = ctx.texts(lang)
        text = form.get("text", "").replace("\r\n", "\n")
        filename = (form.get("filename") or "upload.yaml").strip()[:100] or "upload.yaml"
        only_check = form.get("action") == "validate"

        def work() -> Response:
            try:
                if only_check:
                    spec = validate_text(text, filename)
                    return listing(request, lang, session, text=text,
                                   message=t("%(file)s is a valid playbook (%(id)s); nothing was written.",
                                             file=filename, id=spec.id))
                done = store_upload(ctx.settings, ctx.engine, ctx.clock, text, filename, by=session.user.username,
                                    actor=actor_of(session))
            except ValidationFailed as exc:
                return listing(request, lang, session, 400, problems=[str(p) for p in exc.problems], text=text)
            return RedirectResponse(f"/console/playbooks/{done.playbook_id}?lang={lang}", status_code=303)

        return await run_in_threadpool(work)

    @r.get("/console/playbooks/{playbook_id}", response_class=HTMLResponse)
    def playbook(request: Request, playbook_id: str, rev: int | None = None) -> Response:
        lang = ctx.lang(request)
        session = ctx.session(request)
        if session is None:
            return ctx.login_redirect(request, lang)
        t = ctx.texts(lang)
        with read_session(ctx.engine) as s:
            pb = s.get(Playbook, playbook_id)
            revisions = list(s.exec(select(PlaybookRevision).where(PlaybookRevision.playbook_id == playbook_id)
                                    .order_by(col(PlaybookRevision.id).desc())).all())
        if pb is None:
            return ctx.notice(request, lang, t("No such playbook"),
                              t("There is no playbook %(id)s with a valid revision.", id=playbook_id[:100]), 404, session)
        shown = next((x for x in revisions if x.id == rev), revisions[0] if revisions else None)
        before = next((x for x in revisions if shown is not None and (x.id or 0) < (shown.id or 0)), None)
        diff = diff_lines(before.source_text if before else "", shown.source_text, before.content_hash[:12] if before
                          else "(none)", shown.content_hash[:12]) if shown is not None else []
        listed = [{"id": x.id, "hash": x.content_hash[:12], "title": x.title, "created": t.when(x.created_at),
                   "current": x.id == pb.current_revision_id} for x in revisions]
        return ctx.render(request, "console_playbook.html", lang, title=t("Playbook %(id)s", id=playbook_id),
                          session=session, pb=pb, revisions=listed, shown=shown, before=before, diff=diff)

    return r
