"""Fuzz the playbook loader and the template sandbox: whatever the file, the answer is a
spec or a ``ValidationFailed`` (at send time a ``TemplateError``), quickly; never another
exception, never a hang."""
from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from commtest.errors import ValidationFailed
from playbooks.loader import parse_playbook
from playbooks.schema import PlaybookSpec
from playbooks.store import load_file
from playbooks.templates import TemplateError, render_message, sample_context
from tests.fuzz.strategies import TEMPLATES, mutated, nested
from tests.hostile import alias_bomb, nested_brackets, playbook_with_template
from tests.playbooks.conftest import VALID

pytestmark = pytest.mark.fuzz

# Above the loader's budget for all the renders of one playbook (5 s): a slower example is a bug.
SLOW = settings(deadline=timedelta(seconds=8))
FIELDS = ["id", "title", "owner", "timezone", "default_language", "mode", "participants", "organisation", "fields",
          "steps", "channel", "template", "ack_deadline", "retries", "retry_interval", "start_after", "escalate",
          "step", "field", "targets", "schedules", "key", "months", "cron", "window", "days", "start", "end",
          "announced", "announce_before", "announce_template", "templates", "en", "nl", "subject", "body", "html"]


def only_clear_errors(text: str) -> None:
    try:
        assert isinstance(parse_playbook(text, "fuzz.yaml"), PlaybookSpec)
    except ValidationFailed as exc:
        assert exc.problems, "a refusal lists its problems"
        for problem in exc.problems:
            assert problem.file == "fuzz.yaml" and str(problem)


@SLOW
@given(mutated(VALID))
def test_a_mutated_playbook_is_loaded_or_refused_with_located_problems(text: str) -> None:
    only_clear_errors(text)


@SLOW
@given(st.sampled_from([alias_bomb(), nested_brackets(5000), VALID]).flatmap(mutated))
def test_mutated_hostile_playbooks_stay_clear_errors(text: str) -> None:
    only_clear_errors(text)


@SLOW
@given(st.text(max_size=400))
def test_any_text_is_loaded_or_refused(text: str) -> None:
    only_clear_errors(text)


@SLOW
@given(nested(FIELDS))
def test_any_yaml_data_is_loaded_or_refused(data: object) -> None:
    out = io.StringIO()
    YAML(typ="safe", pure=True).dump(data, out)
    only_clear_errors(out.getvalue())


@SLOW
@given(TEMPLATES)
def test_any_template_passes_or_fails_validation_in_bounded_time(template: str) -> None:
    only_clear_errors(playbook_with_template(template))


@SLOW
@given(TEMPLATES)
def test_any_template_renders_or_raises_a_template_error_at_send_time(template: str) -> None:
    spec = parse_playbook(VALID, "drill.yaml").model_copy(deep=True)
    spec.templates["invite"]["en"] = spec.templates["invite"]["en"].model_copy(update={"body": template})
    try:
        message = render_message(spec, "invite", "en", sample_context("en"))
    except TemplateError as exc:
        assert exc.template == "invite" and exc.field == "body"
    else:
        assert len(message.body) <= 256 * 1024


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-playbooks")


@given(data=st.binary(max_size=600) | mutated(VALID).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_bytes_in_a_playbook_file_are_loaded_or_refused(folder: Path, data: bytes) -> None:
    path = folder / "fuzz.yaml"
    path.write_bytes(data)
    try:
        load_file(path, max_bytes=4096)
    except ValidationFailed as exc:
        assert exc.problems
