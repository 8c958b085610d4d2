"""Faults of the HTTP connectors through a real ``sesamd serve``: a ``json`` source whose server answers 500,
stalls past the read timeout, hangs up mid-body, sends malformed JSON or a body that never ends; a ``json``
sink whose receiver answers 503, asks to wait with 429 + ``Retry-After``, or is not there at all. Each case
checks the pump's runtime, the execution log ``system:pump_execution:<pipe>``, the offset and, after the
fault is gone, that every entity arrives exactly once."""

from __future__ import annotations

import itertools
import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from actors.testing import Answer, WebRequest, WebServer
from sesamd.testing import Daemon, serve_process

SOURCE_PATH = "/src/items"


# -- the daemon and its API -------------------------------------------------------------------------------


class Node:
    """A ``sesamd serve`` process seen through its HTTP API."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.http = httpx.Client(base_url=daemon.url, headers=daemon.headers, timeout=30)

    def log_text(self) -> str:
        return self.daemon.log.read_text(errors="replace")[-4000:]

    def configure(self, config: list[dict[str, Any]]) -> None:
        """Upload ``config`` whole and wait until its systems are open with the new settings."""
        response = self.http.put("/config", json=config)
        assert response.status_code == 200, response.text
        assert response.json()["validation_errors"] == [], response.text
        for system in (e for e in config if e["type"].startswith("system:")):
            wanted = {k: v for k, v in system.items() if not k.startswith("_")}

            def is_open(system_id: str = system["_id"], wanted: dict[str, Any] = wanted) -> bool:
                shown = self.http.get(f"/systems/{system_id}").json()
                original = shown["config"]["original"]
                return shown["runtime"]["state"] == "open" and all(original.get(k) == v for k, v in wanted.items())

            wait_until(is_open, 10, f"system {system['_id']} open")

    def pump(self, pipe_id: str) -> dict[str, Any]:
        response = self.http.get(f"/pipes/{pipe_id}/pump")
        assert response.status_code == 200, response.text
        runtime: dict[str, Any] = response.json()["runtime"]
        return runtime

    def operate(self, pipe_id: str, operation: str) -> dict[str, Any]:
        response = self.http.post(f"/pipes/{pipe_id}/pump", data={"operation": operation})
        assert response.status_code == 200, response.text
        runtime: dict[str, Any] = response.json()["runtime"]
        return runtime

    def wait_idle(self, pipe_id: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            runtime = self.pump(pipe_id)
            if not runtime["is-running"]:
                return runtime
            assert time.monotonic() < deadline, f"pipe {pipe_id} still running after {timeout} s\n{self.log_text()}"
            time.sleep(0.02)

    def run(self, pipe_id: str, timeout: float = 30) -> dict[str, Any]:
        """Start a run and wait for its end; the pump's runtime after it."""
        assert self.operate(pipe_id, "start")["is-running"] is True
        return self.wait_idle(pipe_id, timeout)

    def entities(self, dataset: str, **params: str) -> list[dict[str, Any]]:
        """Every stored version (``history=false``: the latest ones), in offset order."""
        response = self.http.get(f"/datasets/{dataset}/entities", params=params)
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()
        return found

    def execution_log(self, pipe_id: str) -> dict[str, dict[str, Any]]:
        """The execution log's latest entities by ``_id``."""
        return {e["_id"]: e for e in self.entities(f"system:pump_execution:{pipe_id}", history="false")}

    def dataset_runtime(self, dataset: str) -> dict[str, Any]:
        response = self.http.get(f"/datasets/{dataset}")
        assert response.status_code == 200, response.text
        runtime: dict[str, Any] = response.json()["runtime"]
        return runtime


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    with serve_process(tmp_path / "data") as daemon:
        api = Node(daemon)
        try:
            yield api
        finally:
            api.http.close()  # no keep-alive connection for the graceful shutdown to wait for
        assert daemon.terminate() == 0, api.log_text()


@pytest.fixture
def web() -> Iterator[WebServer]:
    with WebServer() as server:
        yield server


def versions(entities: list[dict[str, Any]]) -> Counter[str]:
    return Counter(e["_id"] for e in entities)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        match = re.search(r"^VmRSS:\s+(\d+) kB", status.read(), re.MULTILINE)
    assert match is not None
    return int(match.group(1)) / 1024


# -- the json source ----------------------------------------------------------------------------------------


def source_config(web: WebServer, *, system: dict[str, Any] | None = None, source: dict[str, Any] | None = None,
                  pump: dict[str, Any] | None = None, **pipe: Any) -> list[dict[str, Any]]:
    return [
        {"_id": "web", "type": "system:url", "url_pattern": web.url("/src/%s"), "connect_timeout": 1,
         "read_timeout": 2, **(system or {})},
        {"_id": "pull", "type": "pipe", "source": {"type": "json", "system": "web", "url": "items", **(source or {})},
         "pump": {"mode": "manual", "max_read_retries": 2, "read_retry_delay": 0.05, **(pump or {})}, **pipe},
    ]


def read_errors(log: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for i, e in log.items() if i.startswith("read-error:")]


def test_a_500_is_retried_then_fails_the_run_without_moving_since(node: Node, web: WebServer) -> None:
    items = [{"_id": str(i), "name": f"item {i}", "_updated": i} for i in (1, 2, 3)]
    upstream: dict[str, Any] = {"items": items, "failing": False}
    arrivals: list[float] = []

    def answer(request: WebRequest) -> Answer:
        arrivals.append(time.monotonic())
        if upstream["failing"]:
            return Answer.json({"error": "the database is down"}, status=500)
        since = int(request.query.get("since", 0))
        return Answer.json([e for e in upstream["items"] if e["_updated"] > since])

    web.route(SOURCE_PATH, answer)
    node.configure(source_config(web, source={"supports_since": True}))
    good = node.run("pull")
    assert good["success"] is True and good["last-seen"] == "3", good
    stored = node.entities("pull")
    assert versions(stored) == {"1": 1, "2": 1, "3": 1}

    # the server breaks while upstream changes: 2 is updated, 4 is new
    upstream["failing"] = True
    upstream["items"] = [items[0], {"_id": "2", "name": "item 2, changed", "_updated": 4}, items[2],
                         {"_id": "4", "name": "item 4", "_updated": 5}]
    before = len(web.of(SOURCE_PATH))
    failed = node.run("pull")
    tried = web.of(SOURCE_PATH)[before:]
    assert len(tried) == 3  # the first attempt and max_read_retries (2) more
    assert [r.query.get("since") for r in tried] == ["3"] * 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals[before:])]
    assert gaps[0] >= 0.045 and gaps[1] >= 0.095 and max(gaps) < 1.5, gaps  # read_retry_delay 0.05, doubling
    assert failed["success"] is False
    message = failed["last-original-error-message"]
    assert "reading the source failed" in message and "answered 500" in message, message
    assert "after 2 retries" in message and "the database is down" in message, message
    assert failed["last-message"].startswith("Pump failed:") and "500" in failed["last-message"]
    assert failed["last-seen"] == "3"  # since is not advanced
    log = node.execution_log("pull")
    assert log["pump-failed"]["original_error_message"] == message
    assert log["pump-failed"]["reason_why_stopped"] == failed["last-message"]
    [read_error] = read_errors(log)
    assert read_error["error_code"] == 1  # an answer came: the system was reached
    assert read_error["original_error_message"].startswith("GET http://127.0.0.1:")  # the source's own error
    assert "answered 500" in read_error["original_error_message"]
    assert node.entities("pull") == stored  # nothing stored, changed or deleted
    assert "pump pull: run failed" in node.log_text()

    upstream["failing"] = False
    recovered = node.run("pull")
    assert recovered["success"] is True and recovered["last-seen"] == "5", recovered
    assert web.of(SOURCE_PATH)[-1].query.get("since") == "3"
    history = node.entities("pull")
    assert versions(history) == {"1": 1, "2": 2, "3": 1, "4": 1}  # only the changes: no duplicate versions
    assert {e["_id"]: e["name"] for e in node.entities("pull", history="false")} == {
        "1": "item 1", "2": "item 2, changed", "3": "item 3", "4": "item 4"}

    again = node.run("pull")  # nothing new upstream: nothing new stored
    assert again["success"] is True and again["last-seen"] == "5"
    assert web.of(SOURCE_PATH)[-1].query.get("since") == "5"
    assert node.entities("pull") == history


def test_an_answer_slower_than_the_read_timeout_fails_the_run_with_a_timeout(node: Node, web: WebServer) -> None:
    items = [{"_id": "1", "name": "one"}, {"_id": "2", "name": "two"}]
    web.route(SOURCE_PATH, Answer.json(items), Answer.json(items, delay=3.0))  # then slow, for good
    node.configure(source_config(web, system={"read_timeout": 0.5}, pump={"max_read_retries": 1}))
    assert node.run("pull")["success"] is True
    stored = node.entities("pull")

    started = time.monotonic()
    failed = node.run("pull")
    took = time.monotonic() - started
    assert len(web.of(SOURCE_PATH)) == 3  # the good run, then one attempt and one retry
    assert failed["success"] is False
    message = failed["last-original-error-message"]
    assert "reading the source failed" in message and "timed out" in message and "ReadTimeout" in message, message
    assert "after 1 retry" in message, message
    assert took < 2.9, f"the run took {took:.1f} s: the read timeout (0.5 s) did not cut the wait"
    [read_error] = read_errors(node.execution_log("pull"))
    assert read_error["error_code"] == 0  # no answer at all: the system could not be reached
    assert "timed out" in read_error["original_error_message"]
    assert node.entities("pull") == stored


def test_a_body_cut_off_mid_way_fails_the_run_and_a_rerun_stores_each_entity_once(node: Node,
                                                                                 web: WebServer) -> None:
    items = [{"_id": f"{i:05}", "name": f"item {i}", "text": "x" * 100} for i in range(3000)]
    body = json.dumps(items, indent=1).encode()
    web.route(SOURCE_PATH, Answer(body=body, hang_up_after=len(body) * 2 // 3))
    node.configure(source_config(web, batch_size=100))
    failed = node.run("pull")
    assert len(web.of(SOURCE_PATH)) == 1  # a broken body is not asked again in the same run (source_json)
    assert failed["success"] is False
    message = failed["last-original-error-message"]
    assert "reading the source failed" in message and "the body was cut off" in message, message
    [read_error] = read_errors(node.execution_log("pull"))
    assert "cut off" in read_error["original_error_message"]
    partial = node.entities("pull")
    # what was committed before the break is a prefix of the answer, each entity whole and once
    assert [e["_id"] for e in partial] == [e["_id"] for e in items[:len(partial)]]
    assert all(e["name"] == f"item {int(e['_id'])}" and e["text"] == "x" * 100 for e in partial)
    assert len(partial) < 2000
    assert node.dataset_runtime("pull")["populated"] is False  # no complete read yet

    web.route(SOURCE_PATH, Answer(body=body))
    recovered = node.run("pull")
    assert recovered["success"] is True, recovered
    history = node.entities("pull")
    assert versions(history) == {e["_id"]: 1 for e in items}  # the whole set, each entity exactly once
    assert node.dataset_runtime("pull")["populated"] is True
    assert node.execution_log("pull")["pump-completed"]["metrics"]["entities.entities_last_run"] == 3000


def test_malformed_json_fails_the_run_naming_the_problem(node: Node, web: WebServer) -> None:
    good = [{"_id": "1", "name": "one"}, {"_id": "2", "name": "two"}]
    web.route(SOURCE_PATH, Answer.json(good),
              Answer(body=b'[{"_id": "1", "name": "one"},\n {"_id": "2", "name": "two"} {"_id": "3"}]'))
    node.configure(source_config(web))
    assert node.run("pull")["success"] is True
    stored = node.entities("pull")

    failed = node.run("pull")
    assert len(web.of(SOURCE_PATH)) == 2  # bad JSON is not retried
    assert failed["success"] is False
    message = failed["last-original-error-message"]
    assert "not a JSON array or NDJSON" in message and "expected ',' or ']' after an array item" in message, message
    assert "line 2, column 30" in message, message  # where the comma is missing
    [read_error] = read_errors(node.execution_log("pull"))
    assert read_error["error_code"] == 1 and "line 2, column 30" in read_error["original_error_message"]
    assert node.entities("pull") == stored  # nothing deleted by the failed full run


def test_an_endless_body_streams_in_bounded_memory_until_stopped(node: Node, web: WebServer) -> None:
    served, ended = [0], threading.Event()

    def endless() -> Iterator[bytes]:
        try:
            yield b"["
            pad = b"p" * 400
            for n in itertools.count():
                chunk = b"".join(b'{"_id": "%d", "n": %d, "pad": "%s"},' % (i, i, pad)
                                 for i in range(n * 100, n * 100 + 100))
                served[0] += len(chunk)
                yield chunk
        finally:  # the handler dropped the generator: the node hung up
            ended.set()

    web.route(SOURCE_PATH, lambda request: Answer(chunks=endless()))
    node.configure(source_config(web, system={"read_timeout": 5}))
    pid = node.daemon.process.pid
    baseline = rss_mb(pid)
    assert node.operate("pull", "start")["is-running"] is True
    started, peak, slowest = time.monotonic(), baseline, 0.0
    while time.monotonic() - started < 4 or served[0] < 30e6:
        assert time.monotonic() - started < 20, f"only {served[0] / 1e6:.1f} MB served in 20 s"
        time.sleep(0.2)
        peak = max(peak, rss_mb(pid))
        asked = time.monotonic()
        assert node.http.get("/pipes", timeout=5).status_code == 200
        slowest = max(slowest, time.monotonic() - asked)
        assert node.pump("pull")["is-running"] is True, node.log_text()
    stopping = time.monotonic()
    node.operate("pull", "stop")
    runtime = node.wait_idle("pull", timeout=10)
    stopped_in = time.monotonic() - stopping
    peak = max(peak, rss_mb(pid))
    served_mb = served[0] / 1e6
    assert served_mb >= 30, served_mb
    assert peak < 400 and peak - baseline < 150, f"RSS {baseline:.0f} -> {peak:.0f} MB over {served_mb:.0f} MB"
    assert slowest < 2, f"GET /pipes took {slowest:.2f} s during the run"
    assert stopped_in < 5, f"the stop took {stopped_in:.1f} s"
    assert runtime["success"] is False and runtime["last-message"] == "Pump was stopped", runtime
    assert runtime["progress"]["processed"] > 10000
    assert ended.wait(10), "the node did not close the endless response after the stop"
    after_stop = served[0]
    time.sleep(0.3)
    assert served[0] == after_stop
    log = node.execution_log("pull")
    assert log["pump-failed"]["reason_why_stopped"] == "Pump was stopped"
    assert log["pump-failed"]["original_error_message"] is None and not read_errors(log)
    # what the run read before the stop was committed, each entity once: n counts up from 0 without a gap
    processed = runtime["progress"]["processed"]
    dataset = node.dataset_runtime("pull")
    assert dataset["count-index-exists"] == dataset["next-offset"] == processed, (dataset, processed)
    [last] = node.entities("pull", since=str(processed - 2))
    assert (last["_id"], last["n"]) == (str(processed - 1), processed - 1)
    assert node.http.get("/pipes").status_code == 200


# -- the json sink ------------------------------------------------------------------------------------------

PEOPLE = [{"_id": str(i), "name": f"person {i}"} for i in range(1, 6)]
SINK_PATH = "/receivers/people"


class Receiver:
    """A JSON Push receiver for a :class:`WebServer` route: answers ``script`` in turn (``(status, headers)``),
    then ``default``; keeps every attempt with its arrival time, and the requests it took (200)."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str]]] = []
        self.default = 200
        self.attempts: list[tuple[float, int, WebRequest]] = []
        self.delivered: list[WebRequest] = []
        self.lock = threading.Lock()

    def __call__(self, request: WebRequest) -> Answer:
        with self.lock:
            status, headers = self.script.pop(0) if self.script else (self.default, {})
            self.attempts.append((time.monotonic(), status, request))
            if status == 200:
                self.delivered.append(request)
                return Answer.json({})
        return Answer.json({"error": f"status {status}"}, status=status, headers=headers)

    def entity_ids(self) -> Counter[str]:
        return Counter(e["_id"] for request in self.delivered for e in request.json())


def sink_config(url_pattern: str, **pump: Any) -> list[dict[str, Any]]:
    return [
        {"_id": "receiver", "type": "system:url", "url_pattern": url_pattern, "connect_timeout": 1,
         "read_timeout": 2},
        {"_id": "people", "type": "pipe", "source": {"type": "embedded", "entities": PEOPLE},
         "pump": {"mode": "manual"}},
        {"_id": "push", "type": "pipe", "source": {"type": "dataset", "dataset": "people"},
         "sink": {"type": "json", "system": "receiver", "url": "people", "batch_size": 2},
         "pump": {"mode": "manual", "batch_retries": 2, "write_retry_delay": 0.05, **pump}},
    ]


def offsets_of_people(node: Node) -> dict[str, str]:
    return {e["_id"]: str(e["_updated"]) for e in node.entities("people", history="false")}


def write_errors(log: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i: e for i, e in log.items() if i.startswith("write-error:")}


@pytest.mark.parametrize("first_batch_ok", [False, True], ids=["from-the-start", "after-the-first-batch"])
def test_a_503_receiver_fails_the_run_and_a_later_run_delivers_each_entity_once(
        node: Node, web: WebServer, first_batch_ok: bool) -> None:
    receiver = Receiver()
    web.route(SINK_PATH, receiver)
    node.configure(sink_config(web.url("/receivers/%s")))
    assert node.run("people")["success"] is True
    offsets = offsets_of_people(node)
    receiver.default = 503
    if first_batch_ok:
        receiver.script = [(200, {})]

    failed = node.run("push")
    assert failed["success"] is False
    # the batch (1 + batch_retries attempts), then its first entity alone (as many): max_consecutive_write_errors
    # is 1, so that first failure fails the run
    statuses = [status for _, status, _ in receiver.attempts]
    assert statuses == [200] * first_batch_ok + [503] * 6, statuses
    sent = [[e["_id"] for e in r.json()] for _, _, r in receiver.attempts[first_batch_ok:]]
    first, second = ("3", "4") if first_batch_ok else ("1", "2")
    assert sent == [[first, second]] * 3 + [[first]] * 3, sent
    message = failed["last-original-error-message"]
    assert f"writing entity '{first}' failed" in message and "answered 503" in message, message
    assert failed["last-seen"] == (offsets["2"] if first_batch_ok else None)  # the last batch delivered
    log = node.execution_log("push")
    assert set(write_errors(log)) == {f"write-error:{first}"}
    error = log[f"write-error:{first}"]
    assert (error["error_code"], error["resolved"], error["dead"]) == (1, False, False)
    assert "answered 503" in error["original_error_message"] and error["entity"]["name"] == f"person {first}"
    assert log["pump-failed"]["exception_entity"]["_id"] == first
    assert log["pump-failed"]["original_error_message"] == message

    receiver.default = 200
    recovered = node.run("push")
    assert recovered["success"] is True, recovered
    assert recovered["last-seen"] == offsets["5"]
    assert receiver.entity_ids() == {p["_id"]: 1 for p in PEOPLE}  # every entity exactly once over both runs
    delivered = {e["_id"]: e for r in receiver.delivered for e in r.json()}
    assert all(delivered[p["_id"]]["name"] == p["name"] for p in PEOPLE)
    resolved = node.execution_log("push")[f"write-error:{first}"]
    assert resolved["resolved"] is True

    again = node.run("push")  # nothing new: nothing sent
    assert again["success"] is True and receiver.entity_ids() == {p["_id"]: 1 for p in PEOPLE}


def test_a_429_with_retry_after_is_waited_out_and_the_run_succeeds(node: Node, web: WebServer) -> None:
    receiver = Receiver()
    receiver.script = [(429, {"Retry-After": "1"})]
    web.route(SINK_PATH, receiver)
    node.configure(sink_config(web.url("/receivers/%s")))
    assert node.run("people")["success"] is True

    runtime = node.run("push")
    assert runtime["success"] is True, runtime
    assert runtime["last-seen"] == offsets_of_people(node)["5"]
    (refused_at, refused, first), (retried_at, retried, again) = receiver.attempts[:2]
    assert (refused, retried) == (429, 200)
    waited = retried_at - refused_at
    assert 0.95 <= waited < 3, f"the retry came {waited:.2f} s after the 429 (Retry-After: 1, write_retry_delay 0.05)"
    assert again.body == first.body and again.query == first.query  # the same request again
    assert receiver.entity_ids() == {p["_id"]: 1 for p in PEOPLE}
    assert [s for _, s, _ in receiver.attempts] == [429] + [200] * (len(receiver.attempts) - 1)
    log = node.execution_log("push")
    assert not write_errors(log) and log["pump-completed"]["entities_failed"] == 0


def test_a_refused_connection_is_unreachable_and_nothing_is_lost_later(node: Node, web: WebServer) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    node.configure(sink_config(f"http://127.0.0.1:{port}/receivers/%s", batch_retries=1))
    assert node.run("people")["success"] is True

    started = time.monotonic()
    failed = node.run("push")
    assert time.monotonic() - started < 5
    assert failed["success"] is False
    message = failed["last-original-error-message"]
    assert "could not reach its system" in message and "the connection failed" in message, message
    assert "after 1 retry" in message, message
    assert failed["last-seen"] is None
    log = node.execution_log("push")
    assert set(write_errors(log)) == {"write-error:1"}  # no single-entity fallback against a system that is down
    error = log["write-error:1"]
    assert (error["error_code"], error["resolved"]) == (0, False)
    assert "the connection failed" in error["original_error_message"]
    assert log["pump-failed"]["exception_entity"]["_id"] == "1"

    receiver = Receiver()
    web.route(SINK_PATH, receiver)
    node.configure(sink_config(web.url("/receivers/%s"), batch_retries=1))
    recovered = node.run("push")
    assert recovered["success"] is True, recovered
    assert recovered["last-seen"] == offsets_of_people(node)["5"]
    assert receiver.entity_ids() == {p["_id"]: 1 for p in PEOPLE}
    assert [s for _, s, _ in receiver.attempts] == [200] * len(receiver.attempts)
    assert node.execution_log("push")["write-error:1"]["resolved"] is True
