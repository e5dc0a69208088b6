"""``/playbooks``: list, one with its revisions, validate a file, upload one, preview a run."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path as PathParam, Request
from sqlmodel import col, func, select
from starlette.concurrency import run_in_threadpool

from commtest.db import read_session
from commtest.errors import ValidationFailed
from commtest.models import Playbook, PlaybookRevision
from commtest.users import UserInfo
from scheduler.specs import spec_for_revision
from web.api.auth import current_user, operator
from web.api.common import PageParams, api_of, page_params, paged
from web.api.problems import ProblemError, ProblemItem
from web.api.schemas import Page, PlaybookDetail, PlaybookOut, Preview, ValidationResult
from web.playbook_upload import store_upload, validate_text

router = APIRouter(tags=["playbooks"])
YAML_BODY = {"requestBody": {"required": True, "content": {"application/yaml": {"schema": {"type": "string"}}}}}
PlaybookId = PathParam(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$", description="The playbook's id.")


def _revision(rev: PlaybookRevision | None) -> dict[str, Any] | None:
    if rev is None:
        return None
    return {"id": rev.id, "content_hash": rev.content_hash, "title": rev.title, "created_at": rev.created_at}


def _invalid(exc: ValidationFailed) -> ProblemError:
    return ProblemError(422, f"{len(exc.problems)} problem(s) found; nothing was stored", slug="invalid-playbook",
                        problems=[ProblemItem(field=p.field or "", message=p.message, line=p.line, column=p.column)
                                  for p in exc.problems])


async def _yaml_text(request: Request) -> str:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ("application/yaml", "application/x-yaml", "text/yaml", "text/plain"):
        raise ProblemError(415, "send the playbook as application/yaml", slug="unsupported-media-type")
    body = await request.body()
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise ProblemError(422, "the playbook is not UTF-8 text; save it as UTF-8", slug="invalid-playbook") from None


@router.get("/playbooks", response_model=Page[PlaybookOut], summary="The playbooks")
def list_playbooks(request: Request, params: PageParams = Depends(page_params),
                   user: UserInfo = Depends(current_user)) -> dict[str, Any]:
    api = api_of(request)
    with read_session(api.engine) as s:
        total = int(s.exec(select(func.count()).select_from(Playbook)).one())
        rows = s.exec(select(Playbook).order_by(col(Playbook.id)).limit(params.limit).offset(params.offset)).all()
        items = []
        for pb in rows:
            rev = s.get(PlaybookRevision, pb.current_revision_id) if pb.current_revision_id else None
            items.append({"id": pb.id, "title": rev.title if rev else "", "current_revision": _revision(rev),
                          "last_error": pb.last_error})
    return paged(request, items, total, params)


@router.get("/playbooks/{playbook_id}", response_model=PlaybookDetail, summary="A playbook and its revisions")
def get_playbook(request: Request, playbook_id: str = PlaybookId, user: UserInfo = Depends(current_user)) -> dict[str, Any]:
    api = api_of(request)
    with read_session(api.engine) as s:
        pb = s.get(Playbook, playbook_id)
        if pb is None:
            raise ProblemError(404, f"no playbook {playbook_id!r}", slug="not-found")
        revs = s.exec(select(PlaybookRevision).where(PlaybookRevision.playbook_id == playbook_id)
                      .order_by(col(PlaybookRevision.id).desc())).all()
        current = next((r for r in revs if r.id == pb.current_revision_id), None)
        spec = spec_for_revision(s, current.id) if current is not None and current.id else None
    return {"id": pb.id, "title": current.title if current else "", "current_revision": _revision(current),
            "last_error": pb.last_error, "revisions": [_revision(r) for r in revs],
            "channels": spec.channels() if spec else [],
            "participants": [p.organisation for p in spec.participants] if spec else []}


@router.post("/playbooks/validate", response_model=ValidationResult, summary="Validate a playbook file; stores nothing",
             openapi_extra=YAML_BODY)
async def validate(request: Request, user: UserInfo = Depends(current_user)) -> dict[str, Any]:
    text = await _yaml_text(request)
    try:
        spec = await run_in_threadpool(validate_text, text, "upload.yaml")
    except ValidationFailed as exc:
        raise _invalid(exc) from None
    return {"valid": True, "id": spec.id, "title": spec.title, "channels": spec.channels()}


@router.put("/playbooks/{playbook_id}", response_model=PlaybookDetail, summary="Upload a playbook (a new revision)",
            openapi_extra=YAML_BODY)
async def upload(request: Request, playbook_id: str = PlaybookId, user: UserInfo = Depends(operator)) -> dict[str, Any]:
    api = api_of(request)
    text = await _yaml_text(request)

    def work() -> dict[str, Any]:
        try:
            spec = validate_text(text, "upload.yaml")
        except ValidationFailed as exc:
            raise _invalid(exc) from None
        if spec.id != playbook_id:
            raise ProblemError(422, f"the file's id is {spec.id!r}, not {playbook_id!r}; PUT it to /playbooks/{spec.id}",
                               slug="invalid-playbook", problems=[ProblemItem(field="id", message="does not match the URL")])
        store_upload(api.settings, api.engine, api.clock, text, "upload.yaml", by=user.username,
                     actor=f"api:{user.username}")
        return get_playbook(request, playbook_id, user)

    return await run_in_threadpool(work)


@router.get("/playbooks/{playbook_id}/preview", response_model=Preview, summary="Dry run: the pings a run now would send")
def preview(request: Request, playbook_id: str = PlaybookId, user: UserInfo = Depends(current_user)) -> dict[str, Any]:
    from scheduler.engine import refusal
    from scheduler.planner import initial_plan

    api = api_of(request)
    with read_session(api.engine) as s:
        pb = s.get(Playbook, playbook_id)
        if pb is None or pb.current_revision_id is None:
            raise ProblemError(404, f"no playbook {playbook_id!r} with a valid revision", slug="not-found")
        spec = spec_for_revision(s, pb.current_revision_id)
        planned, _gaps = initial_plan(s, spec)
    missing = [k for k in spec.channels() if not api.settings.providers(k)]
    return {"playbook_id": playbook_id, "escalation_steps": [st.id for st in spec.steps if st not in spec.initial_steps()],
            "channels": {k: api.settings.channel_status(k) for k in spec.channels()},
            "refusal": refusal(spec, missing) if missing else None,
            "pings": [{"organisation": p.target.organisation_code, "contact_point": p.target.contact_point_code,
                       "step": p.step.id, "channel": p.step.channel, "address": p.address, "language": p.target.language,
                       "start_after_s": p.step.start_after.total_seconds(),
                       "ack_deadline_s": p.step.ack_deadline.total_seconds()} for p in planned]}
