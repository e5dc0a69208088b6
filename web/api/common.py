"""Pagination (``?limit=&offset=``) and the API's shared state."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Query, Request
from sqlalchemy.engine import Engine

from commtest.clock import Clock
from commtest.settings import Settings

MAX_LIMIT = 200


@dataclass(frozen=True)
class PageParams:
    limit: int
    offset: int


def page_params(limit: int = Query(50, ge=1, le=MAX_LIMIT, description="At most this many items."),
                offset: int = Query(0, ge=0, le=10_000_000, description="Skip this many.")) -> PageParams:
    return PageParams(limit, offset)


def next_url(request: Request, params: PageParams, total: int) -> str | None:
    if params.offset + params.limit >= total:
        return None
    return str(request.url.include_query_params(limit=params.limit, offset=params.offset + params.limit))


def paged(request: Request, items: list[Any], total: int, params: PageParams) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": params.limit, "offset": params.offset,
            "next": next_url(request, params, total)}


@dataclass(frozen=True)
class Api:
    settings: Settings
    engine: Engine
    clock: Clock


def api_of(request: Request) -> Api:
    api: Api = request.app.state.api
    return api
