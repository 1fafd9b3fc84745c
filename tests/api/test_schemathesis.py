"""Every HTTP operation fuzzed by schemathesis from the server's own OpenAPI description, on both
backends: no 5xx, every status documented, every body matching its declared schema.

Cases are valid (positive) and invalid (negative) inputs. Operations run authenticated: admin
routes with an administrator's token, the rest with a registered user's (logout with a throwaway
user's, so it cannot revoke the others). About half the cases that name a room, system, asset or
token get a real one the user owns instead of a random UUID, so the code behind the 404 runs too
(PATCH /api/systems/{id} with generated templates is where the 500s used to be). DELETEs keep
random ids so that the objects survive the run. Seeds are fixed (`derandomize`): CI is repeatable.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Any

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.support.client import png_bytes
from tests.support.server import ServerProcess

EXAMPLES = int(os.environ.get("TABLEFORGE_FUZZ_EXAMPLES", "15"))  # per operation and mode
# A longer hunt outside CI: TABLEFORGE_FUZZ_EXAMPLES=200 TABLEFORGE_FUZZ_RANDOM=1 (new seeds each run)
FIXED_SEEDS = os.environ.get("TABLEFORGE_FUZZ_RANDOM") != "1"
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def _session(base: str, username: str, password: str, *, register: bool) -> str:
    path = "/api/auth/register" if register else "/api/auth/login"
    r = httpx.post(base + path, json={"username": username, "password": password}, timeout=30)
    assert r.status_code in (200, 201), r.text
    return str(r.json()["token"])


def _admin_token(server: ServerProcess) -> str:
    name = f"fuzzadmin{uuid.uuid4().hex[:8]}"
    made = subprocess.run([sys.executable, "-m", "tableforge", "users", "create", name, "--admin",
                           "--password", "admin-password"], env={**os.environ, **server.env},
                          capture_output=True, text=True, timeout=60, input="")
    assert made.returncode == 0, made.stderr
    return _session(server.base_url, name, "admin-password", register=False)


def _objects(base: str, token: str) -> dict[str, str]:
    """A system, a room, an asset and a token owned by the fuzzing user."""
    h = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=h, timeout=30) as c:
        system = c.post("/api/systems", json={"name": "Fuzz", "category": "fuzz", "complexity": "beginner",
                                              "template": {"hp": 10}}).json()
        room = c.post("/api/rooms", json={"name": "Fuzz table"}).json()
        asset = c.post(f"/api/rooms/{room['id']}/assets", files={"file": ("m.png", png_bytes(), "image/png")}).json()
        tok = c.post(f"/api/rooms/{room['id']}/tokens", json={"asset_id": asset["id"], "x": 1, "y": 2}).json()
        me = c.get("/api/users/me").json()
    return {"system_id": system["id"], "room_id": room["id"], "asset_id": asset["id"], "token_id": tok["id"],
            "user_id": me["id"], "sha256": asset["sha256"]}


def test_openapi_description_is_valid_and_typed(server: ServerProcess) -> None:
    spec = httpx.get(f"{server.base_url}/openapi.json").json()
    validate(spec)  # raises on an invalid OpenAPI 3.1 document
    untyped = [(path, method, status) for path, ops in spec["paths"].items() for method, op in ops.items()
               for status, resp in op["responses"].items()
               if resp.get("content", {}).get("application/json", {}).get("schema", {"$ref": ""}) in
               ({"type": "string"}, {})]
    assert untyped == []
    snapshot = spec["paths"]["/api/rooms/{room_id}"]["get"]["responses"]
    assert snapshot["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/SnapshotOut"}
    assert snapshot["4XX"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}


def _fuzz(operation: Any, headers: dict[str, str], http: requests.Session, real: dict[str, str],
          cases: list[int], failures: list[str]) -> None:
    """EXAMPLES valid and EXAMPLES invalid cases of one operation; statuses and failures collected."""
    strategy = st.tuples(st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                                   operation.as_strategy(GenerationMode.NEGATIVE)), st.booleans())

    @given(drawn=strategy)
    @settings(max_examples=EXAMPLES * 2, deadline=None, database=None, derandomize=FIXED_SEEDS,
              suppress_health_check=list(HealthCheck), phases=[settings.default.phases[2]])
    def run(drawn: tuple[Any, bool]) -> None:
        case, use_real = drawn
        if use_real and case.method.upper() != "DELETE" and isinstance(case.path_parameters, dict):
            for name in list(case.path_parameters):
                if name in real:
                    case.path_parameters[name] = real[name]
        http.cookies.clear()  # register/login set a cookie; each case authenticates by its header only
        response = case.call(headers=headers, session=http)
        cases.append(response.status_code)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis' failures: collect them all
            failures.append(f"{case.method} {operation.path} -> {response.status_code}: {str(exc)[:400]}")

    run()


def test_every_operation_fuzzed(server: ServerProcess) -> None:
    base = server.base_url
    user = _session(base, f"fuzz{uuid.uuid4().hex[:8]}", "correct horse", register=True)
    throwaway = _session(base, f"fuzzout{uuid.uuid4().hex[:8]}", "correct horse", register=True)
    admin = _admin_token(server)
    real = _objects(base, user)
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    http = requests.Session()
    cases: list[int] = []
    failures: list[str] = []

    for result in schema.get_all_operations():
        operation = result.ok()
        path = operation.path
        token = admin if path.startswith("/api/admin") else throwaway if path == "/api/auth/logout" else user
        _fuzz(operation, {"Authorization": f"Bearer {token}"}, http, real, cases, failures)

    print(f"schemathesis: {len(cases)} cases, statuses {sorted(set(cases))}, {len(failures)} failures")
    assert len(cases) >= 20 * EXAMPLES, len(cases)
    assert [s for s in cases if s >= 500] == []
    assert failures == [], "\n".join(failures[:20])
    log = server.log()
    assert "unhandled_error" not in log and "Traceback" not in log
