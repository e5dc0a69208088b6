"""Hypothesis profiles for the fuzz tests (``make fuzz``; marked ``fuzz``, left out of ``make test``).

``fuzz`` (the default here) is sized so that the whole fuzz run stays under about five
minutes on two cores; ``quick`` is a smoke run; ``deep`` is for a night. Choose one with
``HYPOTHESIS_PROFILE=deep make fuzz``. Every profile has a deadline per example: an input
that takes longer is a failure, which is what these tests look for.
"""
from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

_COMMON = dict(
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    print_blob=True,
)
settings.register_profile("quick", max_examples=25, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("fuzz", max_examples=1000, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("deep", max_examples=10000, **_COMMON)  # type: ignore[arg-type]
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fuzz"))
