"""Reports: the test report, the monthly report with sign-off, the updated contact directory.

Builders are pure functions over SQL aggregates of the event log; renderers turn
their frozen results into HTML, PDF, CSV, JSON and vCard.
"""
from __future__ import annotations
