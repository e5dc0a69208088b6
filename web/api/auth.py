"""Token authentication for the API (``Authorization: Bearer ct_...``, a personal token from
``commtest token add`` or the console) and the role rules, the same as the console's: anyone
signed in reads; a coordinator or an admin changes what the daemon does; a reviewer or an
admin signs a monthly report (with their password as well)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from commtest.access import authenticate_token
from commtest.users import OPERATING_ROLES, UserInfo
from web.api.problems import ProblemError

bearer = HTTPBearer(auto_error=False, description="A personal API token (ct_...) from `commtest token add` or the console.")


def current_user(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> UserInfo:
    if credentials is None:
        raise ProblemError(401, "send a personal API token as 'Authorization: Bearer ct_...' "
                                "(`commtest token add USER --name WHAT` or the console's API tokens page)",
                           slug="unauthenticated", headers={"WWW-Authenticate": "Bearer"})
    user = authenticate_token(request.app.state.engine, credentials.credentials)
    if user is None:
        raise ProblemError(401, "this API token is unknown, revoked, or its user is disabled", slug="unauthenticated",
                           headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return user


def operator(user: UserInfo = Depends(current_user)) -> UserInfo:
    if user.role not in OPERATING_ROLES:
        raise ProblemError(403, f"user {user.username!r} has role {user.role.value}; only a coordinator or an admin may "
                                "do this", slug="forbidden")
    return user


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuse a body over ``limit`` bytes before anything parses it: by its Content-Length at
    once, and by the bytes actually received when it has none or lies."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
                       send: Callable[[MutableMapping[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _too_large(scope, send, self.limit)
            return
        seen = 0

        async def limited() -> MutableMapping[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge
            return message

        await self.app(scope, limited, send)


async def _too_large(scope: MutableMapping[str, Any], send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
                     limit: int) -> None:
    import json

    body = json.dumps({"type": "urn:commtest:problem:too-large", "title": "Content Too Large", "status": 413,
                       "detail": f"the body is larger than {limit} bytes (COMMTEST_API_MAX_BODY_BYTES)",
                       "instance": scope.get("root_path", "") + scope.get("path", "")}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
