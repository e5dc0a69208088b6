"""The sandbox script's ``after:`` keeps reading a bare number as seconds."""
from __future__ import annotations

from datetime import timedelta

from channels.sandbox import SandboxScript


def test_a_sandbox_rule_after_a_bare_number_waits_that_many_seconds() -> None:
    script = SandboxScript.from_data({"default": {"behaviour": "ack", "after": 2}, "rules": [{"after": "1m"}]})
    assert script.default.after == timedelta(seconds=2)
    assert script.rules[0].after == timedelta(minutes=1)
