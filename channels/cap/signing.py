"""The HMAC-SHA256 header that authenticates a CAP message between partners.

``X-Commtest-Signature: sha256=<hex of HMAC-SHA256(secret, body)>`` over the raw body,
checked in constant time before the body is parsed. Both directions use the partner's
shared secret; mutual TLS is the documented alternative (docs/channels/cap.md).
"""
from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Commtest-Signature"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())
