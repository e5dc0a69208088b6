"""``/directory``: read it (organisations paginated), import a file (all or nothing, the same
validation as ``commtest directory import``)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from sqlmodel import col, func, select
from starlette.concurrency import run_in_threadpool

from commtest import events as ev
from commtest.db import read_session, session_scope
from commtest.directory import import_directory
from commtest.errors import ValidationFailed
from commtest.models import ContactPoint, Endpoint, FieldOfWork, Organisation
from commtest.users import UserInfo
from web.api.auth import current_user, operator
from web.api.common import PageParams, api_of, page_params, paged
from web.api.problems import ProblemError, ProblemItem
from web.api.schemas import DirectoryPage, ImportResult

router = APIRouter(tags=["directory"])
KINDS = {"application/yaml": ".yaml", "application/x-yaml": ".yaml", "text/yaml": ".yaml", "text/csv": ".csv"}


def problems_of(exc: ValidationFailed, shown: str) -> list[ProblemItem]:
    return [ProblemItem(field=p.field or "", message=p.message, line=p.line, column=p.column) for p in exc.problems]


@router.get("/directory", response_model=DirectoryPage, summary="The directory, organisations paginated")
def read_directory(request: Request, params: PageParams = Depends(page_params),
                   user: UserInfo = Depends(current_user)) -> dict[str, Any]:
    api = api_of(request)
    with read_session(api.engine) as s:
        total = int(s.exec(select(func.count()).select_from(Organisation)).one())
        orgs = s.exec(select(Organisation).order_by(col(Organisation.code)).limit(params.limit)
                      .offset(params.offset)).all()
        fields = s.exec(select(FieldOfWork).order_by(col(FieldOfWork.code))).all()
        field_code = {f.id: f.code for f in fields}
        ids = [o.id for o in orgs]
        cps = s.exec(select(ContactPoint).where(col(ContactPoint.organisation_id).in_(ids))
                     .order_by(col(ContactPoint.code))).all()
        eps = s.exec(select(Endpoint).where(col(Endpoint.contact_point_id).in_([c.id for c in cps]))
                     .order_by(col(Endpoint.priority), col(Endpoint.id))).all()
    by_cp: dict[int, list[dict[str, Any]]] = {}
    for e in eps:
        by_cp.setdefault(e.contact_point_id, []).append(
            {"id": e.id, "kind": e.kind, "address": e.address, "priority": e.priority, "label": e.label,
             "status": e.status, "verified_at": e.verified_at, "last_outcome": e.last_outcome,
             "last_outcome_at": e.last_outcome_at})
    by_org: dict[int, list[dict[str, Any]]] = {}
    for c in cps:
        by_org.setdefault(c.organisation_id, []).append(
            {"code": c.code, "field": field_code.get(c.field_id, ""), "name": c.name, "kind": c.kind,
             "active": c.active, "languages": list(c.languages), "endpoints": by_cp.get(c.id or 0, [])})
    items = [{"code": o.code, "name": o.name, "country": o.country, "role": o.role, "languages": list(o.languages),
              "timezone": o.timezone, "contact_points": by_org.get(o.id or 0, [])} for o in orgs]
    return {**paged(request, items, total, params), "fields_of_work": [{"code": f.code, "name": f.name} for f in fields]}


@router.post("/directory/import", response_model=ImportResult, summary="Import a directory file (all or nothing)",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/yaml": {"schema": {"type": "string"}}, "text/csv": {"schema": {"type": "string"}}}}})
async def import_file(request: Request,
                      replace: bool = Query(False, description="Make the directory equal to the file (default: merge)."),
                      dry_run: bool = Query(False, description="Validate and count, write nothing."),
                      user: UserInfo = Depends(operator)) -> dict[str, Any]:
    api = api_of(request)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in KINDS:
        raise ProblemError(415, "send the file as application/yaml or text/csv", slug="unsupported-media-type")
    body = await request.body()

    def work() -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"upload{KINDS[media]}"
            path.write_bytes(body)
            try:
                summary = import_directory(api.engine, path, replace=replace, dry_run=dry_run)
            except ValidationFailed as exc:
                raise ProblemError(422, f"{len(exc.problems)} problem(s) found; nothing was written",
                                   slug="invalid-directory", problems=problems_of(exc, path.name)) from None
        counts = [c.__dict__ for c in summary.counts]
        if not dry_run:
            with session_scope(api.engine) as s:
                ev.record_event(s, at=api.clock.now(), actor=f"api:{user.username}", kind=ev.DIRECTORY_IMPORTED,
                                file=path.name, replace=replace, by=user.username,
                                counts={c["kind"]: {k: v for k, v in c.items() if k != "kind"} for c in counts})
        return {"replace": replace, "dry_run": dry_run, "counts": counts, "notes": list(summary.notes)}

    return await run_in_threadpool(work)
