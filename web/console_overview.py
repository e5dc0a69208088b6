"""The console's first page: next planned tests (unannounced ones only by their window),
the last runs with their verdicts, and the directory's health."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from commtest.db import read_session
from commtest.i18n import N_
from web.console_auth import ConsoleContext
from web.directory_health import directory_health
from web.planned_tests import planned_tests
from web.run_board import run_rows

GAP_KINDS = {
    "no-contact-point": N_("no contact point for a field of work"),
    "missing-channel": N_("a channel a playbook needs has no endpoint"),
    "never-verified": N_("endpoints never proven reachable"),
    "not-verified": N_("endpoints not proven reachable for too long"),
    "suspect": N_("endpoints marked suspect"),
    "invalid": N_("endpoints marked invalid"),
    "blocked": N_("numbers that replied STOP to our SMS"),
}


def router(ctx: ConsoleContext) -> APIRouter:
    r = APIRouter()

    @r.get("/console", response_class=HTMLResponse)
    def overview(request: Request) -> Response:
        lang = ctx.lang(request)
        session = ctx.session(request)
        if session is None:
            return ctx.login_redirect(request, lang)
        t = ctx.texts(lang)
        with read_session(ctx.engine) as s:
            planned = planned_tests(s, t)
        runs, _total = run_rows(ctx.engine, t, limit=8)
        health = directory_health(ctx.engine, ctx.clock.now(), ctx.settings.verified_max_age_days)
        kinds = [(t(GAP_KINDS.get(k, k)), n) for k, n in sorted(health.by_kind.items())]
        return ctx.render(request, "console_overview.html", lang, title=t("Overview"), session=session,
                          planned=planned, runs=[x for x in runs if x["status"] != "planned"], health=health,
                          gap_kinds=kinds)

    return r
