"""The JSON API under ``/api/v1``, its OpenAPI document at ``/api/v1/openapi.json``.

Token auth (``web.api.auth``), the console's role rules, RFC 9457 problem details for every
error (``web.api.problems``), ``?limit=&offset=`` on lists, bodies bounded before parsing
(``COMMTEST_API_MAX_BODY_BYTES``). Blocking work runs in the thread pool.
"""
from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from commtest.clock import Clock
from commtest.settings import Settings
from web.api import routes_directory, routes_playbooks, routes_reports, routes_runs
from web.api.auth import BodyLimit, BodyTooLarge
from web.api.common import Api
from web.api.problems import ERROR_STATUSES, MEDIA_TYPE, Problem, ProblemError, ProblemItem, from_error, problem_response

log = logging.getLogger(__name__)
PREFIX = "/api/v1"
DESCRIPTION = """The JSON API of commtest: the directory, playbooks, schedules, runs and reports.

Authenticate with a personal token (`Authorization: Bearer ct_...`, from `commtest token add` or the
console). A token acts with its user's role: anyone reads; a coordinator or an admin starts and aborts
runs, pauses schedules, imports the directory and uploads playbooks; a reviewer or an admin signs a
monthly report, with their password. Errors are RFC 9457 problem details. Lists take `limit` and
`offset` and say `total` and `next`. Figures of simulated checks are marked `simulated`: not evidence."""


def api_app(settings: Settings, engine: Engine, clock: Clock) -> Any:
    """The API as an ASGI app to mount at ``PREFIX`` (bodies bounded before it sees them)."""
    api = FastAPI(title="commtest API", version="1.0.0", description=DESCRIPTION, docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json")
    api.state.api = Api(settings, engine, clock)
    api.state.engine = engine
    for module in (routes_directory, routes_playbooks, routes_runs, routes_reports):
        api.include_router(module.router)

    @api.exception_handler(ProblemError)
    async def problem(request: Request, exc: ProblemError) -> JSONResponse:
        return from_error(request, exc)

    @api.exception_handler(BodyTooLarge)
    async def too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        return problem_response(request, 413, f"the body is larger than {settings.api_max_body_bytes} bytes "
                                "(COMMTEST_API_MAX_BODY_BYTES)", slug="too-large")

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        items = [ProblemItem(field=".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body",
                             message=str(e.get("msg", "invalid"))) for e in exc.errors()]
        return problem_response(request, 422, f"{len(items)} problem(s) in the request", slug="invalid-request",
                                problems=items)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(request, exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @api.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("api: unhandled error on %s %s", request.method, request.url.path)
        return problem_response(request, 500, "the request could not be processed; the error is in the server's log")

    def openapi() -> dict[str, Any]:
        if api.openapi_schema:
            return api.openapi_schema
        doc = get_openapi(title=api.title, version=api.version, description=api.description, routes=api.routes,
                          servers=[{"url": PREFIX}])
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in Problem.model_json_schema(ref_template="#/components/schemas/{model}").get("$defs", {}).items():
            schemas[name] = schema
        problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        problem_schema.pop("$defs", None)
        schemas["Problem"] = problem_schema
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        ref = {"$ref": "#/components/schemas/Problem"}
        for operations in doc.get("paths", {}).values():
            for op in operations.values():
                responses = op.setdefault("responses", {})
                for status, text in ERROR_STATUSES.items():
                    responses[str(status)] = {"description": text, "content": {MEDIA_TYPE: {"schema": ref}}}
                responses["415"] = {"description": "The body's media type is not accepted here.",
                                    "content": {MEDIA_TYPE: {"schema": ref}}}
        api.openapi_schema = doc
        return doc

    api.openapi = openapi  # type: ignore[method-assign]
    return BodyLimit(api, settings.api_max_body_bytes)
