"""Bounds on what commtest reads from files (ARCHITECTURE.md, "Every input is bounded").

A file is measured before it is parsed: reading stops one byte past the limit, so a
50 MB playbook (or ``/dev/zero`` named as one) costs a millisecond, not minutes. The
limits that operators may need to change are settings (``max_playbook_bytes``,
``max_directory_bytes``); the error says which one.
"""
from __future__ import annotations

from pathlib import Path

from commtest.errors import Problem, ValidationFailed

__all__ = [
    "CONFIG_FILE_MAX_BYTES",
    "DEFAULT_MAX_DIRECTORY_BYTES",
    "DEFAULT_MAX_PLAYBOOK_BYTES",
    "SANDBOX_SCRIPT_MAX_BYTES",
    "FileTooLarge",
    "format_size",
    "read_limited",
]

MIB = 1024 * 1024
DEFAULT_MAX_PLAYBOOK_BYTES = 1 * MIB
DEFAULT_MAX_DIRECTORY_BYTES = 20 * MIB
# These two files are read before (or outside) the settings, so their limit is fixed.
CONFIG_FILE_MAX_BYTES = 1 * MIB
SANDBOX_SCRIPT_MAX_BYTES = 1 * MIB


class FileTooLarge(ValidationFailed):
    """A file is larger than its limit; nothing of it was parsed."""


def format_size(n: int) -> str:
    """``1048576`` → ``1 MiB``; ``52428800`` → ``50 MiB``; ``1500`` → ``1,500 bytes``."""
    for unit, size in (("GiB", 1024**3), ("MiB", MIB), ("KiB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n:,} bytes"


def read_limited(path: Path, *, limit: int, what: str, setting: str | None) -> bytes:
    """The bytes of ``path``, or ``FileTooLarge`` when it holds more than ``limit`` bytes.

    ``setting`` names the setting that raises the limit (``None``: the limit is fixed).
    ``OSError`` (missing file, no permission) is left to the caller, which knows how to say it.
    """
    with path.open("rb") as fh:
        data = fh.read(limit + 1)
    if len(data) <= limit:
        return data
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    actual = f"is {size:,} bytes ({format_size(size)})" if size > limit else "is larger than that"
    how = (
        f"split it, or raise the limit with the setting {setting} (COMMTEST_{setting.upper()})"
        if setting
        else "this limit is fixed; make the file smaller"
    )
    raise FileTooLarge(
        [Problem(str(path), None, "", f"{what} may be at most {format_size(limit)} and this one {actual}; "
                 f"it was not read; {how}")]
    )
