"""``/reports``: the monthly reports (list, read, sign: a reviewer or an admin, with their
password) and each run's test report."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path as PathParam, Request
from sqlmodel import col, func, select
from starlette.concurrency import run_in_threadpool

from commtest.db import read_session
from commtest.errors import CommtestError, NotFoundError, PermissionDenied
from commtest.models import MonthlyReport
from commtest.users import UserInfo, verify_login
from web.api.auth import current_user
from web.api.common import PageParams, api_of, page_params, paged
from web.api.problems import ProblemError
from web.api.schemas import MonthlyDetail, MonthlyOut, Page, SignMonthly

router = APIRouter(tags=["reports"])
Month = PathParam(pattern=r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])$", description="YYYY-MM (1970 to 2999)")


def _monthly(row: MonthlyReport) -> dict[str, Any]:
    return {"month": row.month, "status": row.status, "generated_at": row.generated_at,
            "content_hash": row.content_hash, "signed_by": row.signed_by, "signed_at": row.signed_at,
            "comment": row.comment}


@router.get("/reports/monthly", response_model=Page[MonthlyOut], summary="The monthly reports, newest first")
def list_monthly(request: Request, params: PageParams = Depends(page_params),
                 user: UserInfo = Depends(current_user)) -> dict[str, Any]:
    with read_session(api_of(request).engine) as s:
        total = int(s.exec(select(func.count()).select_from(MonthlyReport)).one())
        rows = s.exec(select(MonthlyReport).order_by(col(MonthlyReport.month).desc())
                      .limit(params.limit).offset(params.offset)).all()
        return paged(request, [_monthly(r) for r in rows], total, params)


@router.get("/reports/monthly/{month}", response_model=MonthlyDetail,
            summary="A month's report: the signed one, else a fresh draft")
def get_monthly(request: Request, month: str = Month, user: UserInfo = Depends(current_user)) -> dict[str, Any]:
    from reports.monthly import generate_monthly

    api = api_of(request)
    try:
        row = generate_monthly(api.engine, month, api.clock, api.settings.timezone,
                               stale_after_days=api.settings.verified_max_age_days)
    except CommtestError as exc:
        raise ProblemError(422, str(exc), slug="invalid-month") from None
    return {**_monthly(row), "figures": row.data}


@router.post("/reports/monthly/{month}/sign", response_model=MonthlyOut,
             summary="Sign a month off: a reviewer or an admin, with their password")
async def sign(request: Request, body: SignMonthly, month: str = Month,
               user: UserInfo = Depends(current_user)) -> dict[str, Any]:
    from reports.monthly import AlreadySigned, content_hash, generate_monthly, sign_monthly
    from reports.monthly_figures import compute_monthly_figures

    api = api_of(request)

    def work() -> dict[str, Any]:
        from reports.monthly import SIGNING_ROLES

        if user.role not in SIGNING_ROLES:
            raise ProblemError(403, f"user {user.username!r} has role {user.role.value}; only a reviewer or an admin "
                                    "may sign a monthly report", slug="forbidden")
        if verify_login(api.engine, user.username, body.password) is None:
            raise ProblemError(403, f"wrong password for {user.username!r}; nothing was signed", slug="wrong-password")
        if body.content_hash is not None:
            stale = api.settings.verified_max_age_days
            now_hash = content_hash(compute_monthly_figures(api.engine, month, api.settings.timezone,
                                                            stale_after_days=stale).model_dump(mode="json"))
            if body.content_hash != now_hash:
                generate_monthly(api.engine, month, api.clock, api.settings.timezone, stale_after_days=stale)
                raise ProblemError(409, f"the figures of {month} changed since that hash; read them again",
                                   slug="figures-changed")
        try:
            row = sign_monthly(api.engine, month, user.username, body.comment, api.clock, api.settings.timezone,
                               via="api", stale_after_days=api.settings.verified_max_age_days)
        except PermissionDenied as exc:
            raise ProblemError(403, str(exc), slug="forbidden") from None
        except AlreadySigned as exc:
            raise ProblemError(409, str(exc), slug="already-signed") from None
        except CommtestError as exc:
            raise ProblemError(409, str(exc), slug="not-signable") from None
        return _monthly(row)

    return await run_in_threadpool(work)


@router.get("/reports/runs/{run_id}", summary="A run's test report (the JSON of `commtest report test --format json`)",
            response_model=dict[str, Any])
def test_report(request: Request, run_id: int, user: UserInfo = Depends(current_user)) -> Any:
    import json

    from reports.render import render_json
    from reports.test_report import build_test_report

    try:
        return json.loads(render_json(build_test_report(api_of(request).engine, run_id)))
    except NotFoundError as exc:
        raise ProblemError(404, str(exc), slug="not-found") from None
