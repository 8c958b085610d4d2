"""``/api/systems/{id}/proxy/{path}``: requests relayed to a URL system's service (a real HTTP server on
127.0.0.1 that echoes what it got), through the app and through a real ``sesamd serve``."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from actors.testing import WebServer
from sesamd._node import Node, open_node
from sesamd.api import create_app
from sesamd.testing import TokenClient, serve_process

BIG = 24 * 1024 * 1024  # bytes of the large answer
PIECE = 64 * 1024


def _big_piece(number: int) -> bytes:
    return bytes([number % 251]) * PIECE


BIG_SHA = hashlib.sha256(b"".join(_big_piece(i) for i in range(BIG // PIECE))).hexdigest()


@dataclass(frozen=True)
class Service:
    """The microservice (:class:`Handler` served by a :class:`~actors.testing.WebServer`): its address and the
    events that hold its answers back."""

    url: str
    gate: threading.Event  # /gated sends the rest once it is set
    release: threading.Event  # ends /slow's wait


class Handler(BaseHTTPRequestHandler):
    """``/big`` is a large answer written piece by piece, ``/gated`` sends a first piece and the rest once
    ``gate`` is set, ``/slow`` waits for ``release`` before answering; anything else echoes the request."""

    protocol_version = "HTTP/1.1"
    gate: threading.Event  # set by the service fixture
    release: threading.Event

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _any(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/svc/big"):
            self._answer(200, BIG, "application/octet-stream", (_big_piece(i) for i in range(BIG // PIECE)))
        elif self.path.startswith("/svc/gated"):
            self._answer(200, 2 * PIECE, "application/octet-stream", self._gated())
        elif self.path.startswith("/svc/slow"):
            self.release.wait(30)
            self._answer(200, 2, "application/json", iter([b"{}"]))
        else:
            echoed = json.dumps({"method": self.command, "path": self.path, "headers": self.headers.items(),
                                 "body": body.decode("latin-1")}).encode()
            status = 201 if self.command == "POST" else 404 if self.path.startswith("/svc/missing") else 200
            self._answer(status, len(echoed), "application/json; charset=utf-8", iter([echoed]),
                         [("X-Echo", "yes"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
                          ("Keep-Alive", "timeout=5")])

    def _gated(self) -> Iterator[bytes]:
        yield b"a" * PIECE
        self.gate.wait(30)
        yield b"b" * PIECE

    def _answer(self, status: int, length: int, content_type: str, pieces: Iterator[bytes],
                headers: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            for piece in pieces:
                self.wfile.write(piece)
                self.wfile.flush()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any


@pytest.fixture
def service() -> Iterator[Service]:
    gate, release = threading.Event(), threading.Event()
    with WebServer(handler=type("Handler", (Handler,), {"gate": gate, "release": release})) as web:
        try:
            yield Service(web.url(), gate, release)
        finally:
            release.set()
            gate.set()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there now: a connection is refused


def config(service: Service) -> list[dict[str, Any]]:
    return [
        {"_id": "svc", "type": "system:microservice", "base_url": service.url + "/svc/",
         "headers": {"X-System": "from-the-system"}, "docker": {"image": "x", "port": 80}},
        {"_id": "plain", "type": "system:url", "url_pattern": service.url + "/svc/plain/%s"},
        {"_id": "slow", "type": "system:url", "base_url": service.url + "/svc/", "read_timeout": 0.5},
        {"_id": "down", "type": "system:url", "base_url": f"http://127.0.0.1:{closed_port()}/"},
        {"_id": "db", "type": "system:sqlite", "database": ":memory:"},
        {"_id": "broken", "type": "system:url"},  # no URL: an invalid config
    ]


class Api:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.app = create_app(node)
        self.client = TokenClient(self.app)

    async def send(self, method: str, path: str, role: str = "admin", **kwargs: Any) -> tuple[Any, bytes]:
        client = self.client if role == "admin" else TokenClient(self.app, role)
        response = await client.open("/api/systems/" + path, method=method, **kwargs)
        return response, await response.get_data()

    async def echo(self, method: str, path: str, status: int = 200, **kwargs: Any) -> dict[str, Any]:
        response, body = await self.send(method, path, **kwargs)
        assert response.status_code == status, body
        echoed: dict[str, Any] = json.loads(body)
        echoed["headers"] = {k.lower(): v for k, v in echoed["headers"]}
        return echoed

    async def error(self, method: str, path: str, status: int) -> str:
        response, body = await self.send(method, path)
        assert response.status_code == status and response.content_type == "application/json", body
        detail: str = json.loads(body)["detail"]
        return detail


@pytest.fixture
async def api(tmp_path: Path, service: Service) -> AsyncIterator[Api]:
    async with open_node(tmp_path / "node") as node:
        api = Api(node)
        response = await api.client.put("/api/config", json=config(service), query_string={"force": "true"})
        assert response.status_code == 200, await response.get_data()
        for system_id in ("svc", "plain", "slow", "down"):
            actor = node.systems.actor(system_id)
            assert actor is not None
            with trio.fail_after(5):
                await actor.wait_open()
        yield api


async def test_a_get_is_relayed_with_its_path_query_and_headers(api: Api) -> None:
    response, body = await api.send("GET", "svc/proxy/things/a%20b?x=1&y=%C3%A5&x=2",
                                    headers={"X-Custom": "v", "Accept": "application/json", "Connection": "X-Drop",
                                             "X-Drop": "gone", "Cookie": "c=3"})
    assert response.status_code == 200
    echoed = json.loads(body)
    assert echoed["method"] == "GET" and echoed["body"] == ""
    assert echoed["path"] == "/svc/things/a%20b?x=1&y=%C3%A5&x=2"  # the path and query, escaped
    headers = {k.lower(): v for k, v in echoed["headers"]}
    assert headers["x-custom"] == "v" and headers["accept"] == "application/json" and headers["cookie"] == "c=3"
    assert headers["x-system"] == "from-the-system"  # the system's own headers
    assert headers["host"] == api_host(headers)
    for dropped in ("authorization", "x-drop", "remote-addr"):  # the node's token, hop-by-hop ones
        assert dropped not in headers, headers
    assert response.content_type == "application/json; charset=utf-8"
    assert response.headers["X-Echo"] == "yes" and response.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert "Keep-Alive" not in response.headers  # hop-by-hop: not relayed


def api_host(headers: dict[str, str]) -> str:
    assert headers["host"].startswith("127.0.0.1:")  # the service's address, not the node's
    return headers["host"]


async def test_writes_carry_their_body_and_content_type(api: Api) -> None:
    posted = await api.echo("POST", "svc/proxy/items", 201, data=b'{"a": 1}',
                            headers={"Content-Type": "application/json"})
    assert (posted["method"], posted["path"], posted["body"]) == ("POST", "/svc/items", '{"a": 1}')
    assert posted["headers"]["content-type"] == "application/json" and posted["headers"]["content-length"] == "8"
    for method in ("PUT", "PATCH", "DELETE"):
        echoed = await api.echo(method, "svc/proxy/items/1", data=b"\x00\xffraw", headers={
            "Content-Type": "application/octet-stream"})
        assert (echoed["method"], echoed["body"]) == (method, "\x00\xffraw")
    plain = await api.echo("DELETE", "plain/proxy/x")  # url_pattern with %s; no body
    assert plain["path"] == "/svc/plain/x" and plain["body"] == ""


async def test_the_services_status_comes_back_as_it_is(api: Api) -> None:
    missing = await api.echo("GET", "svc/proxy/missing", 404)
    assert missing["path"] == "/svc/missing"
    head, body = await api.send("HEAD", "svc/proxy/anything")
    assert head.status_code == 200 and body == b"" and head.headers["X-Echo"] == "yes"


async def test_a_large_answer_is_relayed_whole(api: Api) -> None:
    digest, size = hashlib.sha256(), 0
    # read as it comes (Quart's plain test request holds only a few chunks before it is read)
    async with api.app.test_client().request("/api/systems/svc/proxy/big", headers={
            "Authorization": f"Bearer {api.client.token}"}) as connection:
        await connection.send_complete()
        with trio.fail_after(60):
            while True:
                try:
                    piece = await connection.receive()
                except trio.EndOfChannel:
                    break
                digest.update(piece)
                size += len(piece)
    assert connection.status_code == 200 and connection.headers["Content-Type"] == "application/octet-stream"
    assert size == BIG and digest.hexdigest() == BIG_SHA
    actor = api.node.systems.actor("svc")
    assert actor is not None and actor.limiter.borrowed_tokens == 0  # the slot was given back


async def test_errors_name_the_system_and_the_url(api: Api, service: Service) -> None:
    assert await api.error("GET", "nope/proxy/x", 404) == "no system 'nope'"
    assert "'db' is a system:sqlite, not a URL system" in await api.error("GET", "db/proxy/x", 400)
    assert "system 'broken' has an invalid config" in await api.error("POST", "broken/proxy/x", 409)
    down = await api.error("GET", "down/proxy/x?q=1", 502)
    assert "system 'down'" in down and "/x?q=1" in down and "cannot be reached" in down
    slow = await api.error("GET", "slow/proxy/slow", 504)
    assert "system 'slow'" in slow and service.url + "/svc/slow" in slow and "did not answer in time" in slow
    for system_id in ("down", "slow"):
        actor = api.node.systems.actor(system_id)
        assert actor is not None and actor.limiter.borrowed_tokens == 0


async def test_reads_need_read_proxy_and_writes_write_proxy(api: Api) -> None:
    assert (await api.send("GET", "svc/proxy/x", role="user"))[0].status_code == 200  # users read
    assert (await api.send("POST", "svc/proxy/x", role="user"))[0].status_code == 403
    assert (await api.send("POST", "svc/proxy/x", role="developer"))[0].status_code == 201
    assert (await api.send("GET", "svc/proxy/x", role="guest"))[0].status_code == 403
    anonymous = TokenClient(api.app, None)
    assert (await anonymous.get("/api/systems/svc/proxy/x")).status_code == 401


def test_through_a_real_server_the_answer_streams(tmp_path: Path, service: Service) -> None:
    with serve_process(tmp_path / "data") as daemon, httpx.Client(headers=daemon.headers, timeout=30) as client:
        response = client.put(f"{daemon.url}/config", params={"force": "true"}, json=config(service))
        assert response.status_code == 200, response.text
        deadline = time.monotonic() + 30
        while not client.get(f"{daemon.url}/systems/svc/status").json()["running"]:
            assert time.monotonic() < deadline, "the system did not open"
            time.sleep(0.05)
        echoed = client.post(f"{daemon.url}/systems/svc/proxy/p/a%2Fb?q=1", content=b"hello",
                             headers={"Content-Type": "text/plain"})
        assert echoed.status_code == 201 and echoed.json()["path"] == "/svc/p/a%2Fb?q=1"  # the raw path as sent
        assert echoed.json()["body"] == "hello"
        # a caller that goes away mid-answer gives the system's slot back (once the service's piece came)
        with client.stream("GET", f"{daemon.url}/systems/svc/proxy/gated") as gone:
            assert next(gone.iter_raw())
            assert client.get(f"{daemon.url}/systems/svc").json()["runtime"]["pipes-running"] == 1  # held
        service.gate.set()
        while client.get(f"{daemon.url}/systems/svc").json()["runtime"]["pipes-running"]:
            assert time.monotonic() < deadline + 30, "the proxy kept the system's slot"
            time.sleep(0.05)
        service.gate.clear()
        # the first piece arrives while the service still holds back the rest: nothing waits for the whole
        with client.stream("GET", f"{daemon.url}/systems/svc/proxy/gated") as gated:
            assert gated.status_code == 200
            pieces = gated.iter_raw()
            first = next(pieces)
            assert first and set(first) == {ord("a")}
            service.gate.set()
            rest = first + b"".join(pieces)
        assert rest == b"a" * PIECE + b"b" * PIECE
        with client.stream("GET", f"{daemon.url}/systems/svc/proxy/big") as big:
            digest = hashlib.sha256()
            for piece in big.iter_raw():
                digest.update(piece)
        assert digest.hexdigest() == BIG_SHA
        down = client.get(f"{daemon.url}/systems/down/proxy/x")
        assert down.status_code == 502 and down.json()["system"] == "down"
        assert client.get(f"{daemon.url}/systems/nope/proxy/x").json() == {"detail": "no system 'nope'",
                                                                            "status": 404}
        assert daemon.terminate() == 0
