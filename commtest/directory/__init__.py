"""The contact directory: validation, import (merge/replace, all or nothing), export, check, show.

One point of contact per organisation and field of work, with the endpoints to reach it
and the date each was last proven reachable.
"""
from __future__ import annotations

from .check import Gap, Requirement, check_directory, find_gaps
from .export import export_directory, snapshot
from .load import CSV_COLUMNS, read_directory_file
from .show import render_directory
from .store import ImportSummary, KindCounts, import_directory, resolve_contact_points
from .validate import DirectoryData, validate

__all__ = [
    "CSV_COLUMNS",
    "DirectoryData",
    "Gap",
    "ImportSummary",
    "KindCounts",
    "Requirement",
    "check_directory",
    "export_directory",
    "find_gaps",
    "import_directory",
    "read_directory_file",
    "render_directory",
    "resolve_contact_points",
    "snapshot",
    "validate",
]
