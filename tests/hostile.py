"""The hostile inputs named in issue 9, made on demand (no test here).

Each one once hung a command, ended in a traceback, or ran for minutes. The regression
tests feed them to every reader; the fuzz tests start from them.
"""
from __future__ import annotations

from pathlib import Path

from commtest.directory.load import REQUIRED_CSV_COLUMNS
from tests.playbooks.conftest import VALID

CSV_FIELD_LIMIT = 131_072  # Python's csv.field_size_limit() default


def alias_bomb(head: str = "id: bomb\ntitle: Bomb\n") -> str:
    """The "billion laughs": nine levels of nine aliases, 9^9 values once expanded."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    return head + "\n".join(lines) + "\n"


def nested_brackets(depth: int = 100_000, head: str = "id: nest\ntitle: Nest\n") -> str:
    return head + "x: " + "[" * depth + "]" * depth + "\n"


def playbook_with_template(body: str) -> str:
    """``VALID`` with the body of its ``invite`` (en) template replaced (single-quoted YAML)."""
    quoted = "'" + body.replace("'", "''") + "'"
    old = "      body: |\n        Hello {{ organisation.name }},\n        please confirm: {{ ack_url }}\n"
    assert old in VALID
    return VALID.replace(old, f"      body: {quoted}\n")


NESTED_RANGES = "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}"
# Under the sandbox's range bound, so only the time budget stops it: 10^8 iterations that print nothing.
NESTED_LOOPS_SILENT = "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"


def slow_templates_playbook(playbook_id: str, templates: int = 4) -> str:
    """A playbook whose ``templates`` template texts each spend their whole render budget
    (``NESTED_LOOPS_SILENT``): each is refused on its own budget, the file within its
    validation budget, yet a folder of them takes seconds per file to read."""
    head, _, _ = VALID.partition("templates:\n")
    names = [f"slow{i}" for i in range(templates)]
    text = head.replace("template: invite", f"template: {names[0]}").replace("template: call", f"template: {names[-1]}")
    quoted = "'" + NESTED_LOOPS_SILENT.replace("'", "''") + "'"
    text += "templates:\n" + "".join(f"  {name}:\n    en:\n      subject: Test\n      body: {quoted}\n" for name in names)
    return text.replace("id: drill", f"id: {playbook_id}", 1)


def write_big_file(path: Path, size: int, head: str = "id: big\ntitle: Big\nsteps:\n") -> Path:
    """A YAML file of ``size`` bytes: a valid start, then a very long comment."""
    with path.open("w", encoding="utf-8") as fh:
        fh.write(head)
        line = "# " + "x" * 1021 + "\n"  # 1 KiB a line
        for _ in range((size - len(head)) // len(line) + 1):
            fh.write(line)
    return path


def csv_with_long_field(length: int = CSV_FIELD_LIMIT + 10) -> str:
    header = ",".join(REQUIRED_CSV_COLUMNS)
    row = ["BE-NCCN", "x" * length] + [""] * (len(REQUIRED_CSV_COLUMNS) - 2)
    return header + "\n" + ",".join(row) + "\n"
