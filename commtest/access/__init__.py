"""Who may use the console and the API: server-side sessions, sign-in throttling per user
name, personal API tokens. Secrets are random; only their sha256 is stored."""
from __future__ import annotations

from .sessions import SessionRow, close_session, open_session, read_session_token
from .throttle import Lockout, clear_failures, lockout_of, record_failure
from .tokens import TOKEN_PREFIX, TokenInfo, authenticate_token, create_token, list_tokens, revoke_token

__all__ = [
    "Lockout",
    "SessionRow",
    "TOKEN_PREFIX",
    "TokenInfo",
    "authenticate_token",
    "clear_failures",
    "close_session",
    "create_token",
    "list_tokens",
    "lockout_of",
    "open_session",
    "read_session_token",
    "record_failure",
    "revoke_token",
]
