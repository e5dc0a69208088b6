"""Errors of the JSON API as RFC 9457 problem details (``application/problem+json``):
``type`` (a ``urn:commtest:problem:<slug>``, or ``about:blank`` for plain HTTP errors),
``title``, ``status``, ``detail``, ``instance``, and for invalid input ``problems``: every
problem found, each with its field (and file line), as the CLI lists them."""
from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

MEDIA_TYPE = "application/problem+json"


class ProblemItem(BaseModel):
    field: str = Field(description="The field (or path to it) the problem is about.")
    message: str
    line: int | None = Field(None, description="Line in the uploaded file, when it came from one.")
    column: int | None = None


class Problem(BaseModel):
    type: str = Field("about:blank", description="urn:commtest:problem:<slug>, or about:blank")
    title: str
    status: int
    detail: str = ""
    instance: str = ""
    problems: list[ProblemItem] | None = None


class ProblemError(Exception):
    def __init__(self, status: int, detail: str, *, slug: str | None = None, title: str | None = None,
                 problems: list[ProblemItem] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.slug = status, detail, slug
        self.title = title or HTTPStatus(status).phrase
        self.problems, self.headers = problems, headers or {}


def problem_response(request: Request, status: int, detail: str, *, slug: str | None = None, title: str | None = None,
                     problems: list[ProblemItem] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = Problem(
        type=f"urn:commtest:problem:{slug}" if slug else "about:blank", title=title or HTTPStatus(status).phrase,
        status=status, detail=detail, instance=request.url.path, problems=problems,
    ).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def from_error(request: Request, exc: ProblemError) -> JSONResponse:
    return problem_response(request, exc.status, exc.detail, slug=exc.slug, title=exc.title, problems=exc.problems,
                            headers=exc.headers)


# Error answers every operation may give, documented on each one.
ERROR_STATUSES = {400: "The request is malformed.", 401: "No valid API token.", 403: "The token's user may not do this.",
                  404: "No such thing.", 409: "The state does not allow it (already signed, run closed, ...).",
                  413: "The body is larger than COMMTEST_API_MAX_BODY_BYTES.", 422: "The input is invalid; every "
                  "problem is listed."}
