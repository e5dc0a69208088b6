"""Masking for logs and events: phone numbers, addresses and tokens never appear whole."""
from __future__ import annotations

import re


def mask_address(address: str) -> str:
    """``+3225550142`` -> ``+32*****142``; ``duty@nccn.example`` -> ``d***@nccn.example``."""
    if not address:
        return address
    if "@" in address:
        local, domain = address.rsplit("@", 1)
        return f"{local[:1]}***@{domain}"
    if address.startswith("+") and len(address) > 6:
        return address[:3] + "*" * (len(address) - 6) + address[-3:]
    if len(address) > 8:
        return address[:4] + "…" + address[-3:]
    return "***"


def mask_token(token: str) -> str:
    return token[:4] + "…" if token else ""


_EMAIL_IN_TEXT = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# An international number as people write it: ``+3225550110``, ``+32 2 555 01 10``,
# ``+32-2-555-01-10``: 7 to 15 digits, one separator at most between two of them.
_PHONE_IN_TEXT = re.compile(r"\+\d(?:[ \u00a0.\-/]?\d){6,14}(?!\d)")


def _mask_phone(match: re.Match[str]) -> str:
    return mask_address("+" + "".join(c for c in match.group(0) if c.isdigit()))


def mask_in_text(text: str) -> str:
    """Every e-mail address and international phone number inside free text (a bounce, a
    provider error), masked; a number written with spaces is masked like its E.164 form."""
    text = _EMAIL_IN_TEXT.sub(lambda m: mask_address(m.group(0)), text)
    return _PHONE_IN_TEXT.sub(_mask_phone, text)
