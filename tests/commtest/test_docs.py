"""Documentation stays true: every setting and every CLI command is documented."""
from __future__ import annotations

from pathlib import Path

import click

from commtest.cli import cli
from commtest.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"
README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_documented_in_the_configuration_guide() -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = [n for n in Settings.model_fields if f"COMMTEST_{n.upper()}" not in text]
    assert missing == []


def test_every_setting_has_a_description() -> None:
    assert [n for n, f in Settings.model_fields.items() if not f.description] == []


def _commands(group: click.Group, prefix: str = "") -> list[str]:
    out = []
    for name, cmd in group.commands.items():
        full = f"{prefix}{name}"
        out.append(full)
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, full + " "))
    return out


def test_every_cli_command_is_in_the_readme() -> None:
    text = README.read_text()
    missing = [c for c in _commands(cli) if f"commtest {c}" not in text]
    assert missing == []


def test_the_readme_shows_the_two_commands_first() -> None:
    text = README.read_text()
    first = text.index("make demo"), text.index("make test")
    assert max(first) < text.index("## ") + 2000


def test_the_configuration_guide_lists_each_shipped_provider_once_and_no_kind_falls_back_to_the_sandbox() -> None:
    from importlib.metadata import entry_points

    text = (DOCS / "configuration.md").read_text()
    assert text.count("Shipped providers") == 1, "the paragraph on the shipped providers is there twice"
    start = text.index("Shipped providers")
    paragraph = text[start:text.index("\n\n", start)]
    providers = {ep.name.split(".", 1)[1] for ep in entry_points(group="commtest.channels")}
    assert [p for p in sorted(providers) if f"`{p}`" not in paragraph] == []
    assert "every other kind" not in text and "for every kind" not in paragraph
    assert "COMMTEST_SANDBOX=true" in paragraph  # the sandbox is used only when asked for
