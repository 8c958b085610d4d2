"""More of the sesam-py workflow end to end against one real ``sesamd serve`` (wiped between tests), on the demo
project built from the getting-started tutorial: ``init`` (plain and ``-add-test-entities``), testdata upload
(and its retries when a receiver is not ready), ``-dump`` and ``dump``, ``reset``/``restart``, ``-whitelist-file``,
``.jinja_vars``, the rich progress display on a terminal and plain lines off one, ``-logformat log|azure``, and
exit codes without tracebacks for broken projects and a failing node.

A small recording proxy in front of the node shows what the client sends and can answer some requests with an
error status first; a small server that answers 500 stands in for a failing node.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import socket
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from actors.testing import WebServer
from sesamd.client import Connection, _output, _portal
from sesamd.client._cli import main
from sesamd.client._commands import _testdata
from sesamd.client._commands import run as run_command
from sesamd.client._errors import ApiError
from sesamd.testing import Daemon, serve_process

TUTORIAL = Path(__file__).resolve().parents[2].parent / "shared" / "tutorial"
BOM = b"\xef\xbb\xbf"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SESAM = Path(sys.executable).with_name("sesam")
ENDPOINTS = {name: {"_id": f"{name}-endpoint", "type": "pipe", "source": {"type": "dataset", "dataset": source},
                    "sink": {"type": "http_endpoint"}}
             for name, source in (("customers", "customers-with-orders"), ("orders", "orders"))}


def test_the_tutorial_is_there() -> None:
    assert (TUTORIAL / "sesam.conf.json").is_file(), f"the getting-started tutorial is missing: {TUTORIAL}"


# -- the project and the node ----------------------------------------------------------------------------------

def build_demo(root: Path) -> Path:
    """The tutorial as a sesam project in portal format: the http_endpoint input pipes fed from testdata/, the
    customers-with-orders pipe, two endpoint pipes with empty expectations, a system, node metadata, test-env."""
    configs = _portal.loads((TUTORIAL / "sesam.conf.json").read_bytes())
    seed = _portal.loads((TUTORIAL / "sesam-seed.conf.json").read_bytes())
    system = {**next(e for e in seed if e["_id"] == "customer-system"), "base_url": "http://localhost:1/customers/"}
    files: dict[str, Any] = {f"pipes/{pipe['_id']}.conf.json": pipe for pipe in [*configs, *ENDPOINTS.values()]}
    files["systems/customer-system.conf.json"] = system
    files["node-metadata.conf.json"] = {"_id": "node", "type": "metadata"}
    for name, value in files.items():
        write(root / name, _portal.dumps(value))
    (root / "test-env.json").write_bytes(BOM + _portal.dumps({"node-env": "test"}).encode())
    (root / "testdata").mkdir()
    for name in ("customers", "orders"):
        shutil.copyfile(TUTORIAL / name / f"{name}.json", root / "testdata" / f"{name}.json")
    for pipe in ENDPOINTS.values():
        write(root / "expected" / f"{pipe['_id']}.test.json", "{}\n")
        write(root / "expected" / f"{pipe['_id']}.json", "[]\n")
    return root


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def tree(root: Path, *folders: str) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and (not folders or p.relative_to(root).parts[0] in folders)}


def config_tree(root: Path) -> dict[str, bytes]:
    return {k: v for k, v in tree(root, "pipes", "systems", "node-metadata.conf.json").items()
            if k.endswith(".conf.json")}


def zip_files(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in archive.infolist())
        assert not [info for info in archive.infolist() if info.is_dir()]
        return {info.filename: archive.read(info) for info in archive.infolist()}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with serve_process(tmp_path_factory.mktemp("node") / "data") as running:
        yield running


def wipe(daemon: Daemon) -> None:
    with Connection(daemon.url, daemon.token) as node:
        node.stop_run_all_pipes()
        node.put_config([], force=True)
        node.put_env({})
        for dataset in node.datasets():
            if not dataset["_id"].startswith("system:"):
                node.delete_dataset(dataset["_id"])


@pytest.fixture
def demo(tmp_path: Path, daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo project as the working directory, with a .syncconfig for the (empty) node one folder up."""
    root = build_demo(tmp_path / "node")
    write(tmp_path / ".syncconfig", f'NODE="{daemon.url}"\nJWT="{daemon.token}"\n')
    for name in ("NODE", "JWT", "FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(root)
    monkeypatch.setattr(run_command, "STATUS_POLL", 0.2)
    wipe(daemon)
    return root


def sesam(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run the command line in-process: its exit code and stderr (nothing on stdout, no traceback)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err, captured.err
    return code, captured.err


def ok(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, err = sesam(capsys, *argv)
    assert code == 0, err
    return err


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def user_ids(node: Connection) -> set[str]:
    return {e["_id"] for e in node.config()}


# -- a recording proxy and a failing server --------------------------------------------------------------------

class Proxy:
    """An HTTP proxy to the node that records each request as ``(method, path, query)`` and answers the
    requests ``fail`` picks with its status instead of forwarding them."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/").removesuffix("/api")
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self.fail: Callable[[str, str, int], int | None] = lambda method, path, seen: None
        self.http = httpx.Client(timeout=None)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                seen = sum(1 for m, p, _ in proxy.requests if (m, p) == (self.command, parts.path))
                proxy.requests.append((self.command, parts.path, parse_qs(parts.query)))
                status = proxy.fail(self.command, parts.path, seen)
                if status is not None:
                    self._answer(status, {"Content-Type": "application/json"},
                                 json.dumps({"detail": f"injected {status}"}).encode())
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = proxy.http.request(self.command, proxy.target + self.path, headers=headers, content=body)
                kept = {k: v for k, v in answer.headers.items()
                        if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding")}
                self._answer(answer.status_code, kept, answer.content)

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

        self.web = WebServer(handler=Handler)

    @property
    def url(self) -> str:
        return self.web.url()

    def calls(self, method: str, path: str) -> list[dict[str, list[str]]]:
        return [query for m, p, query in self.requests if (m, p) == (method, path)]

    def __enter__(self) -> Proxy:
        self.web.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.web.close()
        self.http.close()


@pytest.fixture
def proxy(daemon: Daemon) -> Iterator[Proxy]:
    with Proxy(daemon.url) as running:
        yield running


@pytest.fixture
def failing_node() -> Iterator[str]:
    """A "node" in developer mode whose every other answer is a 500 with a JSON error body."""
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if urlsplit(self.path).path == "/api/":
                status, body = 200, {"status": {"developer_mode": True}}
            else:
                status, body = 500, {"detail": "the pipe store is on fire"}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_PUT = do_GET

    with WebServer(handler=Handler) as web:
        yield web.url()


# -- init (client-spec 6.4) ------------------------------------------------------------------------------------

def conditional(prod: dict[str, Any], entities: list[Any]) -> dict[str, Any]:
    return {"type": "conditional", "alternatives": {"prod": prod, "test": {"type": "embedded", "entities": entities}},
            "condition": "$ENV(node-env)"}


def test_plain_init_adds_test_alternatives_without_the_node(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    untouched = tree(demo, "pipes")
    (demo / ".." / ".syncconfig").unlink()  # no node at all
    write(demo / "pipes" / "half.conf.json", _portal.dumps(
        {"_id": "half", "type": "pipe", "source": {"type": "conditional", "condition": "$ENV(node-env)",
                                                   "alternatives": {"prod": {"type": "http_endpoint"}}}}))
    err = ok(capsys, "init", "-node", f"http://127.0.0.1:{closed_port()}")
    assert "Successfully added test sources to 3 pipes." in err
    for name in ("customers", "orders"):
        pipe = {"_id": name, "type": "pipe", "source": conditional({"type": "http_endpoint"}, [])}
        assert (demo / "pipes" / f"{name}.conf.json").read_text() == _portal.dumps(pipe)
    half = _portal.loads((demo / "pipes" / "half.conf.json").read_bytes())
    assert half["source"]["alternatives"]["test"] == {"type": "embedded", "entities": []}
    for name in ("customers-with-orders", "customers-endpoint", "orders-endpoint"):  # dataset sources stay
        assert (demo / "pipes" / f"{name}.conf.json").read_bytes() == untouched[f"pipes/{name}.conf.json"]
    before = tree(demo, "pipes")
    err = ok(capsys, "init")
    assert "No test sources were added." in err and "No pipe configurations were modified." in err
    assert tree(demo, "pipes") == before


def test_init_add_test_entities_fills_the_test_alternatives_from_the_node(
        demo: Path, daemon: Daemon, capsys: pytest.CaptureFixture[str]) -> None:
    ok(capsys, "upload")  # testdata fills the customers and orders datasets
    err = ok(capsys, "init", "-add-test-entities")
    assert "Successfully added test sources to 2 pipes." in err
    assert "Successfully added a total of 6 test entities to 2 pipes." in err
    source = _portal.loads((demo / "pipes" / "customers.conf.json").read_bytes())["source"]
    assert source["type"] == "conditional" and source["alternatives"]["prod"] == {"type": "http_endpoint"}
    entities = source["alternatives"]["test"]["entities"]
    assert [(e["_id"], e["first_name"]) for e in entities] == [("1", "John"), ("2", "Maria"), ("3", "Pam")]

    err = ok(capsys, "init", "-add-test-entities")  # filled already: left alone without -force-add
    assert "Pipe customers already has test entities. Re-run with '-force-add'" in err
    with Connection(daemon.url, daemon.token) as node:
        node.receive("customers", [{"_id": "4", "first_name": "Ada", "last_name": "Lovelace", "age": 36}])
    err = ok(capsys, "init", "-add-test-entities", "-force-add")
    assert "Successfully added a total of 7 test entities to 2 pipes." in err
    entities = _portal.loads((demo / "pipes" / "customers.conf.json").read_bytes())["source"]["alternatives"][
        "test"]["entities"]
    assert sorted(e["_id"] for e in entities) == ["1", "2", "3", "4"]

    # the project now tests from its embedded entities (node-env is "test"), without testdata/
    shutil.rmtree(demo / "testdata")
    ok(capsys, "upload")
    ok(capsys, "run")
    with Connection(daemon.url, daemon.token) as node:
        names = sorted(e["name"] for e in node.pipe_entities("customers-with-orders") if not e.get("_deleted"))
    assert names == ["John Smith", "Maria Hawkins"]


def test_init_add_test_entities_without_the_pipe_on_the_node(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = ok(capsys, "init", "-add-test-entities")
    assert "Configuration for 'customers' was not found on the node." in err
    assert "Successfully added test sources to 2 pipes." in err
    entities = _portal.loads((demo / "pipes" / "orders.conf.json").read_bytes())["source"]["alternatives"]["test"]
    assert entities == {"type": "embedded", "entities": []}


# -- testdata (client-spec 3.4, 6.1 step 8) --------------------------------------------------------------------

def test_testdata_is_pushed_on_upload_and_test_keeps_the_input_datasets(
        demo: Path, daemon: Daemon, proxy: Proxy, capsys: pytest.CaptureFixture[str]) -> None:
    # a file in a subfolder, with a BOM, holding one entity; a file holding null is skipped
    (demo / "testdata" / "orders.json").unlink()
    orders = json.loads((TUTORIAL / "orders" / "orders.json").read_text())
    write(demo / "testdata" / "more" / "orders.json", BOM + json.dumps(orders[0]).encode())
    write(demo / "testdata" / "customers-endpoint.json", "null\n")
    err = ok(capsys, "-node", proxy.url, "upload")
    assert "Uploading entities for customers" in err and "Uploading entities for orders" in err
    assert "Test data upload summary: total=3, uploaded=3, failed=0" in err
    assert len(proxy.calls("POST", "/api/receivers/customers/entities")) == 1
    assert proxy.calls("POST", "/api/receivers/customers-endpoint/entities") == []
    with Connection(daemon.url, daemon.token) as node:
        assert [e["_id"] for e in node.dataset_entities("orders")] == ["1000"]
        assert {e["_id"] for e in node.dataset_entities("customers")} == {"1", "2", "3"}

    shutil.copyfile(TUTORIAL / "orders" / "orders.json", demo / "testdata" / "more" / "orders.json")
    assert sesam(capsys, "-node", proxy.url, "test")[0] == 1  # the expected output is still empty
    ok(capsys, "update", "-node", proxy.url)
    proxy.requests.clear()
    err = ok(capsys, "-node", proxy.url, "test")
    assert "Test was successful!" in err and "All tests passed! Ran 2 tests." in err
    runs = proxy.calls("POST", "/api/pipes/run-all-pipes")
    assert len(runs) == 1 and runs[0]["delete_input_datasets"] == ["false"], runs
    assert runs[0]["request_mode"] == ["sync"]

    shutil.rmtree(demo / "testdata")  # without testdata the node may delete the input datasets
    proxy.requests.clear()
    ok(capsys, "-node", proxy.url, "run")
    assert "delete_input_datasets" not in proxy.calls("POST", "/api/pipes/run-all-pipes")[0]


def test_testdata_upload_retries_a_receiver_that_is_not_ready(
        demo: Path, daemon: Daemon, proxy: Proxy, capsys: pytest.CaptureFixture[str]) -> None:
    proxy.fail = lambda method, path, seen: 503 if path == "/api/receivers/orders/entities" and seen < 1 else None
    err = ok(capsys, "-node", proxy.url, "upload", "-single-thread-upload")
    assert "Test data upload summary: total=2, uploaded=2, failed=0" in err
    assert len(proxy.calls("POST", "/api/receivers/orders/entities")) == 2
    with Connection(daemon.url, daemon.token) as node:
        assert {e["_id"] for e in node.dataset_entities("orders")} == {"1000", "1001", "1002"}


def test_testdata_upload_fails_for_a_pipe_the_node_lacks_and_a_refused_file(
        demo: Path, proxy: Proxy, capsys: pytest.CaptureFixture[str]) -> None:
    write(demo / "testdata" / "nowhere.json", "[]")
    proxy.fail = lambda method, path, seen: 400 if path == "/api/receivers/orders/entities" else None
    code, err = sesam(capsys, "-node", proxy.url, "upload")
    assert code == 1
    assert "Test data upload summary: total=3, uploaded=1, failed=2" in err
    assert "Testdata upload failed for 2 file(s):" in err
    assert "- testdata/nowhere.json (nowhere): the node has no pipe 'nowhere'" in err
    assert "- testdata/orders.json (orders): POST /receivers/orders/entities: 400 Bad Request: injected 400" in err
    assert len(proxy.calls("POST", "/api/receivers/orders/entities")) == 1  # a 4xx is not retried


class _Answers:
    """A MockTransport handler answering POST /receivers/p/entities with the given statuses, then 200."""

    def __init__(self, *statuses: int | None) -> None:
        self.statuses = list(statuses)
        self.seen = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/pipes/p"):
            return httpx.Response(200, json={"_id": "p"})
        self.seen += 1
        status = self.statuses.pop(0) if self.statuses else 200
        if status is None:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(status, json={"detail": f"status {status}"})


@pytest.mark.parametrize("statuses, sent, fails", [
    ((429, 500, 502), 4, None),  # three retries with backoff, then success
    ((None, 503, 503), 4, None),  # a transport error, then 503s (retried each second while the node gets ready)
    ((429, 429, 429, 429), 4, 429),  # out of retries
    ((404,), 1, 404),  # other 4xx fail at once
])
def test_testdata_retries_429_5xx_and_transport_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       statuses: tuple[int | None, ...], sent: int,
                                                       fails: int | None) -> None:
    slept: list[float] = []
    monkeypatch.setattr(_testdata.time, "sleep", slept.append)
    answers = _Answers(*statuses)
    path = write(tmp_path / "p.json", '[{"_id": "1", "n": 1.10}]')
    with Connection("http://node", "a.b.c", transport=httpx.MockTransport(answers)) as node:
        if fails is None:
            assert _testdata.upload_file(node, "p", path) is True
        else:
            with pytest.raises(ApiError) as raised:
                _testdata.upload_file(node, "p", path)
            assert raised.value.status == fails
    assert answers.seen == sent
    backoff = [s for s in slept if s != 1.0]
    assert all(2 ** i <= s < 2 ** i + 1 for i, s in enumerate(backoff)), slept


# -- -dump and dump (client-spec 1.1, 6.13) --------------------------------------------------------------------

def test_dump_writes_the_local_config_as_sesam_config_zip(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(demo / "pipes" / "sub" / "deep.conf.json", _portal.dumps({"_id": "deep", "type": "pipe"}))
    write(demo / "pipes" / "notes.txt", "not config")
    err = ok(capsys, "dump", "-node", f"http://127.0.0.1:{closed_port()}")
    assert "Dumped local config to 'sesam-config.zip'" in err
    files = zip_files(demo / "sesam-config.zip")
    assert files == config_tree(demo)
    assert sorted(files) == ["node-metadata.conf.json", "pipes/customers-endpoint.conf.json",
                             "pipes/customers-with-orders.conf.json", "pipes/customers.conf.json",
                             "pipes/orders-endpoint.conf.json", "pipes/orders.conf.json",
                             "pipes/sub/deep.conf.json", "systems/customer-system.conf.json"]


def test_dump_on_upload_download_and_status(demo: Path, tmp_path: Path, daemon: Daemon,
                                            capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    local = config_tree(demo)
    err = ok(capsys, "upload", "-dump")
    assert "Dumped config to 'sesam-config.zip'" in err
    assert zip_files(demo / "sesam-config.zip") == local  # the local files as they are on disk

    (demo / "sesam-config.zip").unlink()
    err = ok(capsys, "status", "-dump")
    assert "Sesam config is up-to-date with local config!" in err
    assert zip_files(demo / "sesam-config.zip") == local  # the node's, formatted, metadata rewrite undone

    copy = tmp_path / "copy"
    copy.mkdir()
    monkeypatch.chdir(copy)
    ok(capsys, "download", "-dump")
    dumped = zip_files(copy / "sesam-config.zip")
    assert dumped == local == config_tree(copy)


# -- restart and reset (client-spec 6.12) ----------------------------------------------------------------------

def test_restart_keeps_the_config_and_reset_wipes_it(demo: Path, daemon: Daemon, proxy: Proxy,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    ok(capsys, "upload")
    with Connection(daemon.url, daemon.token) as node:
        first = node.status()["node_start_time"]
        err = ok(capsys, "-node", proxy.url, "restart", "-restart-timeout", "60")
        assert "Restarting target node..." in err and "Successfully restarted target node!" in err
        second = node.status()["node_start_time"]
        assert second != first
        assert "customers-with-orders" in user_ids(node)
        assert proxy.calls("POST", "/api/pipes/stop-run-all-pipes") and proxy.calls("POST", "/api/admin")

        err = ok(capsys, "reset", "-restart-timeout", "60")
        assert "Resetting target node..." in err and "Successfully reset target node!" in err
        assert node.status()["node_start_time"] not in (first, second)
        assert node.config() == [] and node.env() == {}
        assert [d["_id"] for d in node.datasets() if not d["_id"].startswith("system:")] == []


def test_restart_fails_when_the_node_does_not_come_back(demo: Path, proxy: Proxy,
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from sesamd.client._commands import node as node_command

    monkeypatch.setattr(node_command, "RESTART_POLL", 0.1)
    proxy.fail = lambda method, path, seen: 200 if (method, path) == ("POST", "/api/admin") else None
    code, err = sesam(capsys, "-node", proxy.url, "restart", "-restart-timeout", "1")
    assert code == 1
    assert "Failed to restart target node! The node answered {'detail': 'injected 200'}" in err


# -- -whitelist-file (client-spec 3.6) -------------------------------------------------------------------------

def test_the_whitelist_limits_upload_testdata_download_verify_and_update(
        demo: Path, tmp_path: Path, daemon: Daemon, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    write(demo / "whitelist.txt", "pipes/customers.conf.json\r\nnode-metadata.conf.json\n\n"
                                  "systems\\customer-system.conf.json\n")
    err = ok(capsys, "upload", "-whitelist-file", "whitelist.txt")
    assert "Test data upload summary: total=1, uploaded=1, failed=0" in err  # not orders: it is not listed
    with Connection(daemon.url, daemon.token) as node:
        assert user_ids(node) == {"customers", "customer-system", "node"}

    # download rewrites the listed files only and deletes no other
    customers = demo / "pipes" / "customers.conf.json"
    customers.write_text(customers.read_text().replace("http_endpoint", "embedded"))
    orders = demo / "pipes" / "orders.conf.json"
    orders.write_text(orders.read_text().replace("http_endpoint", "embedded"))
    before = tree(demo)
    ok(capsys, "download", "-whitelist-file", "whitelist.txt")
    after = tree(demo)
    assert after.pop("pipes/customers.conf.json") != before.pop("pipes/customers.conf.json")
    assert _portal.loads(customers.read_bytes())["source"] == {"type": "http_endpoint"}
    assert after == before  # orders (edited), the endpoint pipes and everything else untouched

    # verify and update look at the listed pipes only
    orders.write_text(orders.read_text().replace("embedded", "http_endpoint"))
    ok(capsys, "upload")
    with Connection(daemon.url, daemon.token) as node:
        node.run_all_pipes(request_mode="sync", delete_input_datasets=False)
    write(demo / "wl-endpoint.txt", "pipes/customers-endpoint.conf.json\n")
    shutil.rmtree(demo / "expected")
    (demo / "expected").mkdir()
    err = ok(capsys, "update", "-whitelist-file", "wl-endpoint.txt")
    assert "1 tests updated!" in err
    assert "Not creating a spec for pipe 'orders-endpoint': it is not in the whitelist" in err
    assert sorted(p.name for p in (demo / "expected").iterdir()) == ["customers-endpoint.json",
                                                                     "customers-endpoint.test.json"]
    write(demo / "expected" / "orders-endpoint.test.json", "{}\n")
    write(demo / "expected" / "orders-endpoint.json", '[{"_id": "nope"}]\n')  # would fail
    err = ok(capsys, "verify", "-whitelist-file", "wl-endpoint.txt")
    assert "Skipping the test spec of pipe 'orders-endpoint': it is not in the whitelist" in err
    assert "Skipping verify of pipe 'orders-endpoint': it is not in the whitelist" in err
    assert "All tests passed! Ran 1 tests." in err
    code, err = sesam(capsys, "verify")
    assert code == 1 and "Pipe verify failed! Length mismatch for test spec 'expected/orders-endpoint.test.json'" in err


def test_a_missing_whitelist_file_is_one_line(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = sesam(capsys, "upload", "-whitelist-file", "nothere.txt")
    assert code == 1
    assert err.splitlines()[1].startswith("the whitelist file ") and "nothere.txt cannot be read" in err


# -- .jinja_vars (client-spec 3.5) -----------------------------------------------------------------------------

def test_jinja_vars_are_substituted_on_upload_and_put_back_on_download(
        demo: Path, tmp_path: Path, daemon: Daemon, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    system = demo / "systems" / "customer-system.conf.json"
    system.write_text(system.read_text().replace('"http://localhost:1/customers/"', '"{{@ customer_url @}}"'))
    pipe = demo / "pipes" / "customers-endpoint.conf.json"
    pipe.write_text(pipe.read_text().replace('"type": "pipe",', '"type": "pipe",\n  "description": '
                                             '"{{@ Crew @}} for {{@ team @}} ({{@ team @}})",'))
    write(demo / ".jinja_vars", '# the test values\ncustomer_url = "http://localhost:1/customers/"\n'
                                "team=Ørsted Crew\nCrew=Crew\n")  # a name with capitals; a value inside another
    original = config_tree(demo)
    ok(capsys, "upload")
    with Connection(daemon.url, daemon.token) as node:
        config = {e["_id"]: e for e in node.config()}
    assert config["customer-system"]["base_url"] == "http://localhost:1/customers/"
    assert config["customers-endpoint"]["description"] == "Crew for Ørsted Crew (Ørsted Crew)"
    assert "Sesam config is up-to-date with local config!" in ok(capsys, "status")

    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copyfile(demo / ".jinja_vars", copy / ".jinja_vars")
    monkeypatch.chdir(copy)
    ok(capsys, "download")
    assert config_tree(copy) == original  # byte for byte, placeholders back
    assert b"{{@ customer_url @}}" in (copy / "systems" / "customer-system.conf.json").read_bytes()

    write(copy / ".jinja_vars", '{"customer_url": "http://localhost:1/customers/", "team": "Ørsted Crew", '
                                '"Crew": "Crew"}')
    ok(capsys, "download")  # the JSON form of the file
    assert config_tree(copy) == original


# -- progress on a terminal, plain lines off one (client-spec 1.2) ---------------------------------------------

class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        raise io.UnsupportedOperation("no descriptor")


def final_lines(text: str) -> list[str]:
    """The log lines without the time-dependent parts and the progress display's redraws."""
    lines = [line.strip() for line in ANSI.sub("", text).replace("\r", "\n").splitlines()]
    return [re.sub(r"elapsed=[\d.]+s", "elapsed=Ns", re.sub(r"\d+ seconds", "N seconds", line)) for line in lines
            if line and not line.startswith(("Running all pipes", "Uploading test data", "Waiting for"))
            and not re.match(r"^[^\w]*(Running all pipes|Uploading test data|Waiting for)", line)]


def test_a_terminal_gets_the_rich_display_and_the_same_messages(demo: Path, capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    plain_upload = ok(capsys, "upload", "-single-thread-upload")
    plain_run = ok(capsys, "run", "-scheduler-request-mode", "async")
    for text in (plain_upload, plain_run):
        assert "\x1b" not in text and "\r" not in text

    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setattr(run_command, "LOG_POLL", 0.3)
    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    assert main(["upload", "-single-thread-upload"]) == 0
    assert main(["run", "-scheduler-request-mode", "async"]) == 0
    monkeypatch.undo()
    shown = screen.getvalue()
    assert ANSI.search(shown), shown  # rich drew (and cleared) its progress display
    assert final_lines(shown) == final_lines(plain_upload) + final_lines(plain_run)
    assert final_lines(shown)[-2:] == ["Successfully ran all pipes to completion in N seconds",
                                       "Total run time was N seconds"]


def test_off_a_terminal_the_installed_command_prints_plain_lines(demo: Path) -> None:
    assert SESAM.is_file(), f"the console script is not installed: {SESAM}"
    result = subprocess.run([str(SESAM), "test", "-print-scheduler-log"], cwd=demo, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 1 and result.stdout == ""  # the expected output is still empty
    assert "\x1b" not in result.stderr and "\r" not in result.stderr and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == f"Using {demo} as base directory"
    assert lines[-3:-1] == ["Test failed!", "Verify failed: 2 of 2 tests failed"]
    assert re.fullmatch(r"Total run time was \d+ seconds", lines[-1])
    assert "Successfully ran all pipes to completion in" in result.stderr


def test_long_progress_is_logged_as_plain_lines(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    _output.setup(0, "short", terminal=False)
    monkeypatch.setattr(_output, "PLAIN_EVERY", 0.0)
    try:
        with _output.progress("Uploading test data", 3) as counter, _output.spinner("Waiting"):
            for _ in range(3):
                counter.advance()
    finally:
        _output.teardown()
    assert capsys.readouterr().err == "Uploading test data: 1 of 3\nUploading test data: 2 of 3\n"


# -- -logformat (client-spec 1.2) ------------------------------------------------------------------------------

def test_logformat_log_gives_time_name_and_level(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(demo / "expected")
    err = ok(capsys, "-logformat", "log", "verify")
    lines = err.splitlines()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    assert re.fullmatch(stamp + f" - sesam - INFO - Using {re.escape(str(demo))} as base directory", lines[0])
    assert re.fullmatch(stamp + r" - sesam - WARNING - Found no tests \(\*\.test\.json\) to run", lines[-2])
    assert re.fullmatch(stamp + r" - sesam - INFO - Total run time was \d+ seconds", lines[-1])
    assert all(re.match(stamp + " - sesam - (INFO|WARNING|ERROR|DEBUG) - ", line) for line in lines)


def test_logformat_azure_marks_errors_and_warnings(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(demo / "expected")
    err = ok(capsys, "-logformat", "azure", "-v", "verify")
    assert "##vso[task.logissue type=warning;]Found no tests (*.test.json) to run\n" in err
    assert err.startswith(f"Using {demo} as base directory\n")
    assert "##[debug]Connecting to " in err
    code, err = sesam(capsys, "-logformat", "azure", "-node", f"http://127.0.0.1:{closed_port()}", "status")
    assert code == 1
    assert err.splitlines()[1].startswith("##vso[task.logissue type=error;]cannot reach the node at ")
    code, err = sesam(capsys, "-logformat", "other", "-node", f"http://127.0.0.1:{closed_port()}", "status")
    assert code == 1 and err.splitlines()[1].startswith("cannot reach the node at ")


# -- exit codes and no traceback (client-spec 1.3) -------------------------------------------------------------

def one_line_failure(err: str, message: str) -> None:
    """A failure is the start line, one message line and the run time line."""
    lines = err.splitlines()
    assert len(lines) == 3, err
    assert lines[0].startswith("Using ") and lines[2].startswith("Total run time was ")
    assert lines[1].startswith(message), err


def test_a_project_without_pipes(demo: Path, daemon: Daemon, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ok(capsys, "upload")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    err = ok(capsys, "status")
    assert "Cannot locate profile file 'test-env.json'" in err
    assert "Sesam file 'pipes/customers.conf.json' was not found locally" in err
    assert "Sesam config is NOT in sync with local config!" in err
    assert "Found no tests (*.test.json) to run" in ok(capsys, "verify")
    assert "No test sources were added." in ok(capsys, "init")
    ok(capsys, "convert")
    ok(capsys, "format")
    ok(capsys, "dump")
    assert zip_files(empty / "sesam-config.zip") == {}
    code, err = sesam(capsys, "upload")
    assert code == 1
    one_line_failure(err, "Cannot locate profile file 'test-env.json'")
    code, err = sesam(capsys, "update")
    assert code == 1 and "no such folder (update writes the expected output there)" in err
    with Connection(daemon.url, daemon.token) as node:
        assert "customers" in user_ids(node)  # nothing above changed the node


@pytest.mark.parametrize("text, message", [
    ('NODE="http://localhost:1"\nthis line has no equals sign\n',
     "not JSON and not KEY=value lines: line 2 is 'this line has no equals sign'"),
    ('NODE="http://localhost:1"\n[other]\nJWT=a.b.c\n', "has no JWT line"),  # a second section hides JWT
    ('JWT=a.b.c\n  NODE=http://localhost:1\n', "has no NODE line"),  # an indented line continues the JWT
    (b"NODE=\xff\n", "cannot be read: "),
])
def test_a_bad_syncconfig_line_is_one_line(demo: Path, capsys: pytest.CaptureFixture[str], text: str | bytes,
                                           message: str) -> None:
    path = write(demo / ".syncconfig", text)
    code, err = sesam(capsys, "status")
    assert code == 1
    if message.startswith("has no"):
        one_line_failure(err, f"jwt and node must be specified either as parameter, os env or in syncconfig file "
                              f"({path} {message})")
    else:
        one_line_failure(err, f"{path}: {message}")


def test_verify_with_an_expected_file_that_is_not_json(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok(capsys, "upload")
    write(demo / "expected" / "orders-endpoint.json", "[{'_id': 'single quotes'}]\n")
    code, err = sesam(capsys, "verify")
    assert code == 1
    assert err.splitlines()[-2] == (f"{demo / 'expected' / 'orders-endpoint.json'}: not valid JSON: Expecting "
                                    "property name enclosed in double quotes (line 1 column 3)")
    write(demo / "expected" / "orders-endpoint.test.json", '{"blacklist": "not a list"}')
    code, err = sesam(capsys, "verify")
    assert code == 1 and "'blacklist' must be a list of strings, not a string" in err
    write(demo / "expected" / "orders-endpoint.test.json", "[]")
    code, err = sesam(capsys, "update")
    assert code == 1 and "a test spec must be a JSON object, not a list" in err


def test_verify_with_a_spec_whose_file_is_missing(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok(capsys, "upload")
    write(demo / "expected" / "orders-endpoint.test.json", '{"file": "elsewhere.json"}')
    code, err = sesam(capsys, "verify")
    assert code == 1
    assert ("Test spec 'expected/orders-endpoint.test.json' references non-existing expected output file "
            "'expected/elsewhere.json'") in err
    assert err.splitlines()[-2].startswith("Verify failed: 1 test specs are wrong")
    write(demo / "expected" / "gone.test.json", "{}")
    code, err = sesam(capsys, "verify")
    assert code == 1
    assert ("Test spec 'expected/gone.test.json' references a non-exisiting output pipe 'gone' - please remove "
            "'expected/gone.test.json'") in err


@pytest.mark.parametrize("command", ["verify", "update", "run", "wipe", "upload", "test"])
def test_a_node_answering_500_is_one_line(demo: Path, failing_node: str, capsys: pytest.CaptureFixture[str],
                                          command: str) -> None:
    code, err = sesam(capsys, "-node", failing_node, command)
    assert code == 1
    lines = err.splitlines()
    assert lines[0].startswith("Using ") and lines[-1].startswith("Total run time was ")
    assert re.fullmatch(r"(Failed to [A-Za-z ]+: )?(GET|PUT|POST) /[a-z/-]+: 500 Internal Server Error: "
                        "the pipe store is on fire", lines[-2]), err


def test_vvv_shows_the_traceback_of_a_failure(demo: Path, failing_node: str) -> None:
    argv = [str(SESAM), "-node", failing_node, "verify"]
    quiet = subprocess.run(argv, cwd=demo, capture_output=True, text=True, timeout=60, check=False)
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr
    one_line_failure(quiet.stderr, "GET /pipes: 500 Internal Server Error: the pipe store is on fire")
    loud = subprocess.run([*argv, "-vvv"], cwd=demo, capture_output=True, text=True, timeout=60, check=False)
    assert loud.returncode == 1 and loud.stdout == ""
    assert "GET /pipes: 500 Internal Server Error: the pipe store is on fire\nThe traceback was:\n" \
           "Traceback (most recent call last):\n" in loud.stderr
    assert "sesamd.client._errors.ApiError: GET /pipes: 500 Internal Server Error" in loud.stderr
    assert "HTTP Request: GET " in loud.stderr  # -vvv also logs the requests
    assert loud.stderr.splitlines()[-1].startswith("Total run time was ")


@pytest.mark.parametrize("argv, code", [
    (["nosuchcommand"], 1), ([], 1), (["validate"], 1), (["-runs", "many", "test"], 2), (["-nosuchoption"], 2),
    (["-version"], 0), (["-h"], 0),
])
def test_exit_codes_of_the_command_line(demo: Path, argv: list[str], code: int,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    if code == 2:
        assert captured.err.startswith("error: ") and "usage: sesam [options] command" in captured.err
    if argv == ["-version"]:
        assert re.fullmatch(r"sesam version \S+\n", captured.out)


def test_node_errors_name_the_status_even_without_a_reason_phrase(demo: Path, daemon: Daemon,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    write(demo / "pipes" / "broken.conf.json", '{"_id": "broken", "type": "pipe", "source": {"type": "nope"}}')
    code, err = sesam(capsys, "upload")
    assert code == 1
    assert err.splitlines()[-2].startswith("Failed to upload config to sesam: PUT /config: 400 Bad Request: "), err
    with Connection(daemon.url, daemon.token) as node, pytest.raises(ApiError, match=r"^GET /pipes/nope/pump: 404 "):
        node.pump("nope")
