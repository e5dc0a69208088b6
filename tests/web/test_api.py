"""The JSON API: its OpenAPI document validates, every route in it is exercised here, the role
rules are the console's, errors are problem details, lists are paginated, bodies are bounded."""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from openapi_spec_validator import validate
from sqlalchemy.engine import Engine

from commtest.access import create_token, revoke_token
from commtest.clock import FrozenClock
from tests.scheduler.seed import PLAYBOOK
from tests.web.console_support import PASSWORD, USERS, World, make_world

API = "/api/v1"
DIRECTORY = """\
fields_of_work:
  - code: crisis-desk
    name: 24/7 crisis desk
organisations:
  - code: XC-NEW
    name: Centre Three (fictional)
    country: BE
    languages: [fr]
    timezone: Europe/Brussels
    contact_points:
      - code: XC-NEW/crisis-desk
        field: crisis-desk
        name: Permanence
        endpoints:
          - {kind: email, address: permanence@xc-new.example}
"""


@dataclass
class ApiWorld:
    world: World
    tokens: dict[str, str]
    seen: set[tuple[str, str]]

    def call(self, method: str, path: str, who: str | None = "adam", **kw):  # type: ignore[no-untyped-def]
        headers = dict(kw.pop("headers", {}))
        if who:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        r = self.world.client.request(method, API + path, headers=headers, **kw)
        self.seen.add((method.lower(), path.split("?")[0]))
        return r


@pytest.fixture
def api(engine: Engine, clock: FrozenClock, tmp_path) -> Iterator[ApiWorld]:  # type: ignore[no-untyped-def]
    folder = tmp_path / "playbooks"
    folder.mkdir()
    for world in make_world(engine, clock, playbook_dir=folder):
        tokens = {name: create_token(engine, name, "tests", clock.now(), actor="test")[1] for name in USERS}
        yield ApiWorld(world, tokens, set())


def is_problem(r, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["title"] and "type" in body
    return body  # type: ignore[no-any-return]


def templates(doc: dict) -> set[tuple[str, str]]:  # type: ignore[type-arg]
    return {(m, p) for p, ops in doc["paths"].items() for m in ops}


def matches(template: str, path: str) -> bool:
    return re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path) is not None


def test_the_openapi_document_validates(api: ApiWorld) -> None:
    doc = api.world.client.get(API + "/openapi.json").json()
    validate(doc)
    assert doc["servers"] == [{"url": API}] and "HTTPBearer" in doc["components"]["securitySchemes"]
    assert doc["paths"]["/runs"]["post"]["responses"]["403"]["content"]["application/problem+json"]


def test_every_route_of_the_document_answers_as_documented(api: ApiWorld) -> None:
    """One tour through every operation with sensible input; the last assertion checks that
    the tour touched every route the OpenAPI document lists."""
    doc = api.world.client.get(API + "/openapi.json").json()
    assert api.call("get", "/directory?limit=1").json()["next"].endswith("limit=1&offset=1")
    r = api.call("post", "/directory/import?dry_run=true", content=DIRECTORY, headers={"content-type": "application/yaml"})
    assert r.status_code == 200 and r.json()["dry_run"] is True
    r = api.call("post", "/directory/import", content=DIRECTORY, headers={"content-type": "application/yaml"})
    assert r.status_code == 200 and {c["kind"]: c["created"] for c in r.json()["counts"]}["organisations"] == 1
    assert [p["id"] for p in api.call("get", "/playbooks").json()["items"]] == ["test-playbook"]
    assert api.call("get", "/playbooks/test-playbook").json()["channels"] == ["email", "voice", "sms"]
    r = api.call("post", "/playbooks/validate", content=PLAYBOOK, headers={"content-type": "application/yaml"})
    assert r.json() == {"valid": True, "id": "test-playbook", "title": "Test playbook", "channels": ["email", "voice", "sms"]}
    changed = PLAYBOOK.replace("ack_deadline: 15m", "ack_deadline: 20m")
    r = api.call("put", "/playbooks/test-playbook", content=changed, headers={"content-type": "application/yaml"})
    assert r.status_code == 200 and len(r.json()["revisions"]) == 2
    preview = api.call("get", "/playbooks/test-playbook/preview").json()
    assert {p["address"] for p in preview["pings"]} >= {"desk@xa-one.example"} and preview["refusal"] is None
    assert preview["channels"]["email"] == "sandbox"
    assert api.call("get", "/schedules").json()["items"] == []
    is_problem(api.call("post", "/schedules/999/pause"), 404)
    is_problem(api.call("post", "/schedules/999/resume"), 404)
    r = api.call("post", "/runs", json={"playbook_id": "test-playbook", "note": "API test"})
    assert r.status_code == 201 and r.json()["status"] == "planned" and r.json()["started_by"] == "adam"
    run_id = r.json()["id"]
    api.world.drive(30)
    assert api.call("get", "/runs").json()["total"] == 1
    assert api.call("get", f"/runs/{run_id}").json()["status"] == "running"
    status = api.call("get", f"/runs/{run_id}/status").json()
    assert status["open_attempts"] > 0 and {v["verdict"] for v in status["verdicts"]} == {"pending"}
    pings = [p for p in status["checks"] if p["channel"] == "voice"]
    assert pings
    from commtest.db import session_scope
    from commtest.models import Ping
    from sqlmodel import select

    with session_scope(api.world.engine) as s:
        sent = s.exec(select(Ping).where(Ping.run_id == run_id, Ping.state.in_(("sent", "delivered")))).first()  # type: ignore[attr-defined]
        assert sent is not None
    r = api.call("post", f"/runs/{run_id}/manual", json={"ping_id": sent.id, "how": "radio", "by": "desk"})
    assert r.status_code == 200 and r.json()["status"] == "acked"
    r = api.call("post", f"/runs/{run_id}/abort", json={"reason": "API test over"})
    assert r.status_code == 200 and r.json()["status"] == "aborted"
    is_problem(api.call("post", f"/runs/{run_id}/abort", json={}), 409)
    report = api.call("get", f"/reports/runs/{run_id}").json()
    assert report["format"] == "commtest-report/1" and report["run"]["id"] == run_id
    month = api.call("get", "/reports/monthly/2026-03", who="vera")
    assert month.status_code == 200 and month.json()["status"] == "draft"
    assert api.call("get", "/reports/monthly").json()["items"][0]["month"] == "2026-03"
    is_problem(api.call("post", "/reports/monthly/2026-03/sign", who="rvw",
                        json={"comment": "Seen", "password": "wrong-password-1"}), 403)
    r = api.call("post", "/reports/monthly/2026-03/sign", who="rvw", json={"comment": "Seen", "password": PASSWORD})
    assert r.status_code == 200 and r.json()["signed_by"] == "rvw"
    missing = {(m, t) for m, t in templates(doc) if not any(m == sm and matches(t, sp) for sm, sp in api.seen)}
    assert missing == set()


def test_a_viewer_cannot_start_a_run_and_a_coordinator_cannot_sign(api: ApiWorld) -> None:
    body = is_problem(api.call("post", "/runs", who="vera", json={"playbook_id": "test-playbook"}), 403)
    assert body["type"] == "urn:commtest:problem:forbidden" and "only a coordinator or an admin" in body["detail"]
    assert api.call("get", "/runs", who="vera").json()["total"] == 0
    is_problem(api.call("post", "/reports/monthly/2026-03/sign", who="cora",
                        json={"comment": "x", "password": PASSWORD}), 403)
    is_problem(api.call("post", "/directory/import", who="rvw", content=DIRECTORY,
                        headers={"content-type": "application/yaml"}), 403)


def test_no_token_a_wrong_one_and_a_revoked_one_are_refused(api: ApiWorld) -> None:
    r = api.call("get", "/runs", who=None)
    assert is_problem(r, 401)["type"] == "urn:commtest:problem:unauthenticated" and r.headers["www-authenticate"] == "Bearer"
    is_problem(api.call("get", "/runs", who=None, headers={"Authorization": "Bearer ct_" + "x" * 43}), 401)
    assert api.call("get", "/runs", who="cora").status_code == 200
    from commtest.access import list_tokens

    token_id = next(t.id for t in list_tokens(api.world.engine, "cora"))
    revoke_token(api.world.engine, token_id, api.world.clock.now(), actor="test")
    is_problem(api.call("get", "/runs", who="cora"), 401)


def test_an_invalid_directory_or_playbook_lists_every_problem_and_writes_nothing(api: ApiWorld) -> None:
    bad = DIRECTORY.replace("permanence@xc-new.example", "not-an-address").replace("country: BE", "country: XX")
    body = is_problem(api.call("post", "/directory/import", content=bad, headers={"content-type": "application/yaml"}), 422)
    assert len(body["problems"]) == 2 and all(p["line"] for p in body["problems"])
    assert api.call("get", "/directory").json()["total"] == 3  # XA-COORD, XA-ONE, XB-TWO: nothing added
    body = is_problem(api.call("post", "/playbooks/validate", content="id: x\nsteps: []\n",
                               headers={"content-type": "application/yaml"}), 422)
    assert body["problems"] and body["type"] == "urn:commtest:problem:invalid-playbook"
    is_problem(api.call("post", "/directory/import", content="x", headers={"content-type": "application/json"}), 415)
    is_problem(api.call("post", "/runs", json={"playbook_id": "test-playbook", "unknown": 1}), 422)


def test_a_body_over_the_limit_is_refused_before_it_is_parsed(api: ApiWorld) -> None:
    big = "x" * (api.world.settings.api_max_body_bytes + 1)
    body = is_problem(api.call("post", "/playbooks/validate", content=big, headers={"content-type": "application/yaml"}), 413)
    assert body["type"] == "urn:commtest:problem:too-large"

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(3):
            yield b"y" * (api.world.settings.api_max_body_bytes // 2)

    r = api.call("post", "/playbooks/validate", content=chunks(), headers={"content-type": "application/yaml"})
    is_problem(r, 413)


def test_a_missing_run_or_playbook_is_a_404_problem(api: ApiWorld) -> None:
    is_problem(api.call("get", "/runs/999"), 404)
    is_problem(api.call("get", "/playbooks/nope"), 404)
    is_problem(api.call("get", "/no/such/route"), 404)
    is_problem(api.call("post", "/runs", json={"playbook_id": "nope"}), 404)
