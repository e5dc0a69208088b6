"""schemathesis against the OpenAPI document: generated requests, with an admin's token, never
get a 5xx, and every answer has a status code and content type the document declares.
Bounded (a few examples per operation, no deadline per example) to stay well under a minute, and
by its own timeout marker."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance
from sqlalchemy.engine import Engine

from commtest.access import create_token
from commtest.clock import FrozenClock
from commtest.db import make_engine
from tests.web.console_support import World, make_world

_state: dict[str, object] = {}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory, sqlite_template) -> Iterator[object]:  # type: ignore[no-untyped-def]
    import shutil

    from tests.web.console_support import T0

    folder = tmp_path_factory.mktemp("fuzz")
    shutil.copy(sqlite_template, folder / "commtest.db")
    engine: Engine = make_engine(f"sqlite:///{folder / 'commtest.db'}")
    clock = FrozenClock(T0)
    (folder / "playbooks").mkdir()
    for world in make_world(engine, clock, playbook_dir=folder / "playbooks"):
        _state["world"] = world
        _state["token"] = create_token(engine, "adam", "fuzz", clock.now(), actor="test")[1]
        yield schemathesis.openapi.from_asgi("/api/v1/openapi.json", world.client.app)
    engine.dispose()


schema = schemathesis.pytest.from_fixture("api_schema")
# Its own bound, well above the ~1 minute it takes, rather than the suite's 300 s per test:
# a slow generator or a hanging route fails this test, not the whole run much later.
TIMEOUT_SECONDS = 180


@pytest.mark.timeout(TIMEOUT_SECONDS)
@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_generated_requests_never_get_a_server_error(case) -> None:  # type: ignore[no-untyped-def]
    world = _state["world"]
    assert isinstance(world, World)
    case.call_and_validate(headers={"Authorization": f"Bearer {_state['token']}"},
                           checks=[not_a_server_error, status_code_conformance, content_type_conformance])


def test_the_fuzz_test_has_its_own_timeout(request: pytest.FixtureRequest) -> None:
    fuzz = [item for item in request.session.items if item.originalname == "test_generated_requests_never_get_a_server_error"]
    if not fuzz:
        pytest.skip("the fuzz test is not collected in this session")
    assert all(item.get_closest_marker("timeout").args == (TIMEOUT_SECONDS,) for item in fuzz)  # type: ignore[union-attr]
