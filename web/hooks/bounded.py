"""Request bodies of provider webhooks, bounded before anything parses them."""
from __future__ import annotations

from fastapi import Request


class BodyTooLarge(Exception):
    pass


async def read_bounded(request: Request, limit: int) -> bytes:
    """The raw body, at most ``limit`` bytes: refused by its ``Content-Length`` first, and by
    the bytes actually read when it lies or streams."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)
