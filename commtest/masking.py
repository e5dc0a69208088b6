"""Masking for logs and events: phone numbers, addresses and tokens never appear whole."""
from __future__ import annotations


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
