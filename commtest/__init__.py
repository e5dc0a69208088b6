"""commtest kernel: settings, clock, database, tables, errors, directory, CLI.

The kernel imports none of the other top-level packages (scheduler, channels,
playbooks, reports, web) except lazily from the CLI, which is the one place that
wires them together.
"""
from __future__ import annotations

__version__ = "0.1.0"
