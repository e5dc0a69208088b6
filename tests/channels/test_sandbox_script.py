"""The sandbox script: ``after:`` reads a bare number as seconds; a hostile file is a clear ConfigError."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from channels.sandbox import SandboxScript
from commtest.errors import ConfigError


def test_a_sandbox_rule_after_a_bare_number_waits_that_many_seconds() -> None:
    script = SandboxScript.from_data({"default": {"behaviour": "ack", "after": 2}, "rules": [{"after": "1m"}]})
    assert script.default.after == timedelta(seconds=2)
    assert script.rules[0].after == timedelta(minutes=1)


def test_a_hostile_sandbox_script_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    from tests.hostile import alias_bomb, nested_brackets

    path = tmp_path / "script.yaml"
    for text, message in (
        (alias_bomb(head="default: {behaviour: ack}\n"), f"{path}:3:10: YAML aliases (*a0) are not allowed"),
        (nested_brackets(head=""), f"{path}:1:68: nested more than 64 levels deep"),
        ("- just\n- a list\n", f"{path}: a sandbox script is a mapping (default:, rules:); this one is not"),
        ("rules: [1, 2]\n", f"{path}: rules: expected a list of mappings"),
        ("default: {send_delay: soon}\n", f"{path}: default.send_delay: expected a number of seconds, got 'soon'"),
    ):
        path.write_text(text)
        with pytest.raises(ConfigError) as err:
            SandboxScript.from_file(path)
        assert str(err.value).startswith(message), str(err.value)


def test_a_sandbox_script_over_1_mib_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "script.yaml"
    path.write_text("# padding\n" * 120_000)
    with pytest.raises(ConfigError, match="a sandbox script may be at most 1 MiB .* this limit is fixed"):
        SandboxScript.from_file(path)
