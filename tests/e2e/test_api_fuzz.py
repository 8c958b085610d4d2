"""Schemathesis over ``GET /api/openapi.json`` against a real ``sesamd serve`` process.

The node is loaded with a small config (an embedded pipe, a dataset pipe reading its output, a url system,
every pump ``manual`` so nothing runs by itself) and the data the two pipes make, then fuzzed three times
with cases generated from the document, positive (fitting it) and negative (not fitting it):

- **without a token**: every operation. Checks: no 5xx, the response conforms to the document (status,
  content type, body schema), every operation that needs a token is a 401, and afterwards the stored state (config,
  env, secret names, every dataset with its whole log) is exactly what it was: a rejected request changes
  nothing.
- **with an admin token, read-only operations** (GET): the same checks, and the state is unchanged.
- **with an admin token, the writing operations** (PUT, POST, PATCH, DELETE: they may change the config,
  the env, run pumps, delete pipes): no 5xx and conformance only, since an accepted write changes state
  legitimately. This run is the last one in the file; the state checks above snapshot at their own start, so
  they hold in any order.

Path parameters are half the time replaced by ids the node has (so the handlers behind the 404s run too),
and the pump form by a real operation. Each request has a timeout (a hang fails the test), the examples per
operation are bounded (``SESAMD_FUZZ_EXAMPLES`` scales them), and generation is derandomized so the suite is
repeatable. ``POST /api/jwt`` is fuzzed only without a token and with few examples: failed logins are
answered ever more slowly by design (the login throttle), which a fuzzer would otherwise take for a hang.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup

from sesamd._auth import Authenticator
from sesamd._config import render_json

ROOT = Path(__file__).resolve().parents[2]
REQUEST_TIMEOUT = 10.0  # seconds: a request still unanswered then is a hang
EXAMPLES = int(os.environ.get("SESAMD_FUZZ_EXAMPLES", "20"))  # per operation and generation mode, with a token
ANONYMOUS_EXAMPLES = max(4, EXAMPLES // 3)  # without one (all but the public operations stop at the guard)
LOGIN_EXAMPLES = 4

CONFIG: list[dict[str, Any]] = [
    {"_id": "people", "type": "pipe", "pump": {"mode": "manual"},
     "source": {"type": "embedded", "entities": [
         {"_id": "p1", "name": "Ann", "age": 41, "score": "~f1.50"},
         {"_id": "p2", "name": "Bob", "age": 17, "tags": ["a", "b"]},
         {"_id": "p3", "name": "Cyd", "age": 65, "address": {"city": "Oslo"}}]}},
    {"_id": "adults", "type": "pipe", "pump": {"mode": "manual"},
     "source": {"type": "dataset", "dataset": "people"},
     "transform": {"type": "dtl", "rules": {"default": [
         ["copy", "*"], ["add", "adult", ["gte", "_S.age", 18]], ["filter", "_T.adult"]]}}},
    {"_id": "web", "type": "system:url", "base_url": "http://127.0.0.1:9/"},
]
KNOWN_PATH_VALUES = {
    "pipe_id": ["people", "adults"],
    "dataset_id": ["people", "adults", "system:pump_execution:people"],
    "system_id": ["web"],
    "name": ["GREETING", "API_KEY"],
}
KNOWN_QUERY_VALUES = {"entity_id": ["p1", "p2", "p3"]}
PUMP_OPERATIONS = ["start", "stop", "enable", "disable", "update-last-seen", "set-last-seen-to-end",
                   "start-rescan", "reset-rescan", "reset-tracking", "set-tracking-to-start", "bogus"]


@dataclass
class Node:
    url: str  # http://127.0.0.1:PORT/api
    token: str
    stderr: Path

    @property
    def base(self) -> str:
        return self.url.removesuffix("/api")

    def log_size(self) -> int:
        return self.stderr.stat().st_size

    def errors_logged(self, since: int) -> list[str]:
        """The API's and the HTTP server's error lines in the log since ``since`` (bytes): an internal error,
        or one hypercorn caught outside the app's answers (a pump's failed run is no such line)."""
        with self.stderr.open("rb") as log:
            log.seek(since)
            lines = log.read().decode(errors="replace").splitlines()
        return [line for line in lines if "Error in ASGI Framework" in line or (
            any(level in line for level in (" ERROR ", " CRITICAL ")) and any(
                name in line for name in (" sesamd.api", " hypercorn.", " quart.", " asyncio")))]

    def client(self, token: bool = True) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30)


def _wait_for_line(path: Path, process: subprocess.Popen[bytes], prefix: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith(prefix):
                return line
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"sesamd did not start: {path.read_text(errors='replace')!r}")


def _idle(client: httpx.Client, pipe_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        runtime: dict[str, Any] = client.get(f"/api/pipes/{pipe_id}/pump").json()["runtime"]
        if not runtime["is-running"]:
            return runtime
        assert time.monotonic() < deadline, f"pipe {pipe_id} did not finish"
        time.sleep(0.05)


def _run_pipe(client: httpx.Client, pipe_id: str) -> None:
    """A full run (a rescan: the whole source, with deletion tracking) of an enabled pump, to the end."""
    assert client.post(f"/api/pipes/{pipe_id}/pump", data={"operation": "enable"}).status_code == 200
    while (response := client.post(f"/api/pipes/{pipe_id}/pump", data={"operation": "start-rescan"})).status_code \
            == 409:
        _idle(client, pipe_id)
    assert response.status_code == 200, response.text
    runtime = _idle(client, pipe_id)
    assert runtime["success"] is True, runtime


def load(node: Node) -> None:
    """Upload the config, env and secrets; run the pipes when their datasets are missing (at the start, or
    after a fuzzed write deleted them)."""
    with node.client() as client:
        response = client.put("/api/config", content=render_json(CONFIG), headers={"Content-Type": "application/json"})
        assert response.status_code == 200 and response.json() == {"validation_errors": []}, response.text
        assert client.put("/api/env", json={"GREETING": "hello", "LIMIT": 3}).status_code == 200
        assert client.put("/api/secrets", json={"API_KEY": "s3cret"}).status_code == 200
        datasets = {d["_id"] for d in client.get("/api/datasets").json()}
        if not {"people", "adults"} <= datasets:
            for pipe_id in ("people", "adults"):
                _run_pipe(client, pipe_id)
            adults = client.get("/api/datasets/adults/entities", params={"history": "false"}).json()
            assert sorted(e["_id"] for e in adults) == ["p1", "p3"]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """A ``sesamd serve`` process (its output in files: a pipe nobody reads would stall it) with data."""
    root = tmp_path_factory.mktemp("fuzz")
    data_dir, stdout, stderr = root / "data", root / "stdout.log", root / "stderr.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "sesamd._cli", "serve", "--port", "0", "--data-dir", str(data_dir)],
            cwd=ROOT, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
    try:
        line = _wait_for_line(stdout, process, "sesamd: serving ", 30)
        node = Node(line.split()[2], Authenticator(data_dir).mint("admin"), stderr)
        load(node)
        yield node
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def state_of(node: Node) -> dict[str, Any]:
    """What a rejected request must not change: the config, env, secret names, and every dataset (the
    internal ones too) with its counts and its whole log."""
    with node.client() as client:
        def get(path: str, **params: str) -> Any:
            response = client.get(path, params=params)
            assert response.status_code == 200, (path, response.text)
            return response.json()

        datasets = get("/api/datasets", **{"include-internal-datasets": "true"})
        return {
            "config": get("/api/config"),
            "env": get("/api/env"),
            "secrets": get("/api/secrets"),
            "pipes": sorted(p["_id"] for p in get("/api/pipes")),
            "datasets": {d["_id"]: (d, get(f"/api/datasets/{d['_id']}/entities")) for d in datasets},
        }


@dataclass
class Outcome:
    failures: dict[str, str] = field(default_factory=dict)  # a key per distinct problem -> its report
    requests: int = 0
    hung: bool = False  # a request went unanswered: the rest is skipped (each would wait its timeout)
    statuses: dict[tuple[str, int], int] = field(default_factory=dict)  # (generation mode, status) -> count

    def count(self, status: int, mode: str | None = None) -> int:
        return sum(n for (m, code), n in self.statuses.items() if code == status and mode in (None, m))

    def fail(self, key: str, report: str) -> None:
        self.failures.setdefault(key, report)

    def report(self) -> str:
        return "\n\n".join(self.failures.values())


def _known(strategy: Any, method: str, path: str) -> Any:
    """Half the time each path parameter (and entity_id) becomes an id the node has."""

    @st.composite
    def draw(drawer: Callable[[Any], Any]) -> Any:
        case = drawer(strategy)
        for name, values in KNOWN_PATH_VALUES.items():
            if case.path_parameters and name in case.path_parameters and drawer(st.booleans()):
                case.path_parameters[name] = drawer(st.sampled_from(values))
        for name, values in KNOWN_QUERY_VALUES.items():
            if isinstance(case.query, dict) and name in case.query and drawer(st.booleans()):
                case.query[name] = drawer(st.sampled_from(values))
        if method == "POST" and path.endswith("/pump") and drawer(st.booleans()):
            case.body = {"operation": drawer(st.sampled_from(PUMP_OPERATIONS))}
        return case

    return draw()


FRAMING_HEADERS = frozenset({"transfer-encoding", "content-length", "connection", "upgrade", "te", "host",
                             "expect", "trailer", "keep-alive", "proxy-connection"})

CHECKS = [schemathesis.checks.not_a_server_error, schemathesis.checks.status_code_conformance,
          schemathesis.checks.content_type_conformance, schemathesis.checks.response_schema_conformance]
GATEWAY_ERRORS = frozenset({502, 504})  # a proxy route's documented answer for a service that is down


def not_a_server_error_but_a_gateway_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """For the proxy routes (``/systems/{id}/proxy/...``): the ``web`` system's service is at the discard
    port, so a request that reaches it is refused: a 502 (as documented), not a server error."""
    if response.status_code in GATEWAY_ERRORS:
        return None
    result: bool | None = schemathesis.checks.not_a_server_error(ctx, response, case)
    return result


PROXY_CHECKS = [not_a_server_error_but_a_gateway_error, *CHECKS[1:]]


def fuzz(node: Node, *, token: bool, select: Callable[[Any], bool], restore: bool = False) -> Outcome:
    """Fuzz the selected operations; with ``restore`` the node's config and data are loaded again after
    each operation, so a destructive write (PUT /config, DELETE ...) does not leave the rest nothing to hit."""
    schema = schemathesis.openapi.from_url(f"{node.url}/openapi.json", timeout=REQUEST_TIMEOUT)
    outcome = Outcome()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30
    with requests.Session() as session:
        for operation in operations:
            if select(operation):
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    _fuzz_operation(node, session, operation, mode, token, outcome)
                if restore:
                    load(node)
    if os.environ.get("SESAMD_FUZZ_VERBOSE"):
        print(f"fuzz {'with' if token else 'without'} token: {outcome.requests} requests, {outcome.statuses}")
    return outcome


def _fuzz_operation(node: Node, session: requests.Session, operation: Any, mode: GenerationMode, token: bool,
                    outcome: Outcome) -> None:
    headers = {"Authorization": f"Bearer {node.token}"} if token else {}
    # public routes need no token; websocket routes authenticate after the upgrade (a plain GET is a 400)
    open_route = operation.definition.raw.get("x-permission") == "public" or operation.definition.raw.get(
        "x-websocket", False)
    label = f"{_method(operation)} {operation.path}"
    examples = LOGIN_EXAMPLES if operation.path == "/api/jwt" else EXAMPLES if token else ANONYMOUS_EXAMPLES
    strategy = _known(operation.as_strategy(generation_mode=mode), _method(operation), operation.path)

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        if outcome.hung:
            return
        if case.headers:  # HTTP framing is Hypercorn's (an unknown transfer coding is its 501, as RFC 9112 says)
            case.headers = {k: v for k, v in case.headers.items() if k.lower() not in FRAMING_HEADERS}
        try:
            response = case.call(base_url=node.base, session=session, headers=headers, timeout=REQUEST_TIMEOUT)
        except requests.RequestException as exc:
            outcome.hung = True
            outcome.fail(f"{label} {type(exc).__name__}",
                         f"{label}: no answer ({type(exc).__name__}: {exc})\n{case.as_curl_command()}")
            return
        outcome.requests += 1
        key = (str(mode), response.status_code)
        outcome.statuses[key] = outcome.statuses.get(key, 0) + 1
        try:
            case.validate_response(response, checks=PROXY_CHECKS if "/proxy/" in operation.path else CHECKS,
                                   headers=headers)
        except FailureGroup as group:
            titles = sorted({failure.title for failure in group.exceptions})
            outcome.fail(f"{label} {response.status_code} {titles}", str(group))
        if not token and not open_route and response.status_code != 401:
            outcome.fail(f"{label} not 401",
                         f"{label} answered {response.status_code} without a token\n{case.as_curl_command()}")

    if os.environ.get("SESAMD_FUZZ_VERBOSE"):
        print(f"fuzz {'with' if token else 'without'} token: {mode} {label}", flush=True)
    try:
        run()
    except Unsatisfiable:
        assert mode == GenerationMode.NEGATIVE, f"{label}: no case fits the document"  # nothing to negate


def _method(operation: Any) -> str:
    return str(operation.method).upper()


def test_without_a_token_every_request_is_refused_and_changes_nothing(node: Node) -> None:
    before = state_of(node)
    logged = node.log_size()
    outcome = fuzz(node, token=False, select=lambda operation: True)
    assert not outcome.failures, outcome.report()
    assert not node.errors_logged(logged)
    assert outcome.count(401) > outcome.requests // 2, outcome.statuses
    assert state_of(node) == before


def test_with_a_token_reads_answer_and_change_nothing(node: Node) -> None:
    before = state_of(node)
    logged = node.log_size()
    outcome = fuzz(node, token=True, select=lambda operation: _method(operation) == "GET")
    assert not outcome.failures, outcome.report()
    assert not node.errors_logged(logged)
    # negative cases may leave the token out (schemathesis negates the security requirement): only those 401
    assert outcome.count(200) > 0 and outcome.count(401, "positive") == 0, outcome.statuses
    assert state_of(node) == before


def test_with_a_token_writes_never_fail_the_server(node: Node) -> None:
    """Last: accepted writes change the node (config, env, pumps, deleted pipes); only no-5xx and the
    document's conformance are checked here."""
    logged = node.log_size()
    outcome = fuzz(node, token=True, select=lambda operation: _method(operation) != "GET"
                   and operation.path != "/api/jwt", restore=True)
    assert not outcome.failures, outcome.report()
    assert not node.errors_logged(logged)
    assert outcome.count(401, "positive") == 0, outcome.statuses
    with node.client() as client:
        assert client.get("/api/health").json() == {"status": "ok"}
