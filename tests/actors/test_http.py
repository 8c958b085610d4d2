"""HTTP for components (actors/components/_http.py): ``send`` with retries on a mocked transport and a refused
port, ``RetryPolicy``, ``json_entities`` over a real local server (arrays, NDJSON, bad and cut-off bodies,
endless bodies read lazily), ``storage.iter_json_entities``' ``max_value_chars``, and ``SystemLink``."""

from __future__ import annotations

import io
import itertools
import json
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest

import storage
from actors.components import (
    BuildContext,
    ComponentError,
    ConfigError,
    System,
    TerminalError,
    TransientError,
    build_system,
)
from actors.components._http import RETRY_STATUSES, SNIPPET, RetryPolicy, SystemLink, json_entities, send
from actors.components.system_url import UrlSystem
from actors.testing import WebServer

URL = "http://api.test/items"


def mock_client(*answers: httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]
                ) -> tuple[httpx.Client, list[httpx.Request]]:
    """A client whose server gives ``answers`` in turn (an exception is raised; the last answer repeats)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        answer = answers[min(len(seen), len(answers) - 1)]
        seen.append(request)
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return answer

    return httpx.Client(transport=httpx.MockTransport(handler)), seen


# -- send ------------------------------------------------------------------------------------------------


def test_send_returns_a_good_answer() -> None:
    client, seen = mock_client(httpx.Response(200, json=[{"_id": "a"}]))
    waits: list[float] = []
    response = send(client, "GET", URL, policy=RetryPolicy(retries=3, delay=1), sleep=waits.append,
                    params={"since": "5"}, headers={"X-Key": "k"})
    assert response.status_code == 200 and response.json() == [{"_id": "a"}]
    assert len(seen) == 1 and waits == []
    assert seen[0].url == httpx.URL(URL, params={"since": "5"}) and seen[0].headers["X-Key"] == "k"


def test_send_retries_a_500_then_succeeds() -> None:
    client, seen = mock_client(httpx.Response(500, text="boom"), httpx.Response(200, text="ok"))
    waits: list[float] = []
    retried: list[tuple[ComponentError, int]] = []
    response = send(client, "POST", URL, policy=RetryPolicy(retries=2, delay=0.5), sleep=waits.append,
                    on_retry=lambda error, attempt: retried.append((error, attempt)), content=b'{"a": 1}')
    assert response.status_code == 200 and response.text == "ok"
    assert len(seen) == 2 and [r.content for r in seen] == [b'{"a": 1}'] * 2  # the body is sent again
    assert waits == [0.5]
    [(error, attempt)] = retried
    assert attempt == 0 and isinstance(error, TransientError) and error.status == 500
    assert error.message == f"POST {URL} answered 500 Internal Server Error: boom"


def test_send_a_404_is_terminal_at_once() -> None:
    client, seen = mock_client(httpx.Response(404, text="  no such collection\n"))
    waits: list[float] = []
    retried: list[Any] = []
    with pytest.raises(TerminalError) as caught:
        send(client, "GET", URL, policy=RetryPolicy(retries=5, delay=1), sleep=waits.append,
             on_retry=lambda *args: retried.append(args))
    assert len(seen) == 1 and waits == [] and retried == []
    assert caught.value.status == 404 and not caught.value.transient
    assert str(caught.value) == caught.value.message == f"GET {URL} answered 404 Not Found: no such collection"


def test_send_quotes_only_a_snippet_of_a_long_body() -> None:
    client, _ = mock_client(httpx.Response(400, text="x" * 5000))
    with pytest.raises(TerminalError) as caught:
        send(client, "GET", URL)
    assert caught.value.message == f"GET {URL} answered 400 Bad Request: " + "x" * SNIPPET


def test_send_an_empty_error_body_has_no_colon() -> None:
    client, _ = mock_client(httpx.Response(403))
    with pytest.raises(TerminalError) as caught:
        send(client, "DELETE", URL)
    assert caught.value.message == f"DELETE {URL} answered 403 Forbidden"


def test_send_a_streamed_error_answer_is_read_and_closed() -> None:
    client, seen = mock_client(httpx.Response(502, content=iter([b"bad ", b"gateway"])),
                               httpx.Response(200, content=iter([b"[]"])))
    waits: list[float] = []
    with pytest.raises(TransientError) as caught:
        send(client, "GET", URL, policy=RetryPolicy(retries=0), stream=True, sleep=waits.append)
    assert caught.value.message == f"GET {URL} answered 502 Bad Gateway: bad gateway"
    assert len(seen) == 1 and waits == []
    response = send(client, "GET", URL, stream=True)
    assert response.status_code == 200 and not response.is_closed  # a streamed good answer is left open
    assert response.read() == b"[]"
    response.close()


@pytest.mark.parametrize(("retries", "suffix"), [(1, " (after 1 retry)"), (3, " (after 3 retries)")])
def test_send_a_503_with_retries_exhausted_is_transient(retries: int, suffix: str) -> None:
    client, seen = mock_client(httpx.Response(503, text="busy"))
    waits: list[float] = []
    with pytest.raises(TransientError) as caught:
        send(client, "GET", URL, policy=RetryPolicy(retries=retries, delay=1), sleep=waits.append)
    assert len(seen) == retries + 1 and len(waits) == retries
    assert caught.value.status == 503
    assert caught.value.message == f"GET {URL} answered 503 Service Unavailable: busy{suffix}"
    assert str(caught.value).endswith(suffix) and caught.value.args == (caught.value.message,)


def test_send_a_terminal_answer_after_a_retry_says_so() -> None:
    client, _ = mock_client(httpx.Response(503), httpx.Response(401, text="who?"))
    with pytest.raises(TerminalError) as caught:
        send(client, "GET", URL, policy=RetryPolicy(retries=5), sleep=lambda s: None)
    assert caught.value.message == f"GET {URL} answered 401 Unauthorized: who? (after 1 retry)"


def test_send_without_retries_fails_on_the_first_transient_error() -> None:
    client, seen = mock_client(httpx.Response(500))
    with pytest.raises(TransientError) as caught:
        send(client, "GET", URL, sleep=lambda s: pytest.fail("slept"))
    assert len(seen) == 1 and "after" not in caught.value.message


@pytest.mark.parametrize("status", sorted(RETRY_STATUSES))
def test_send_retries_the_retry_statuses(status: int) -> None:
    client, seen = mock_client(httpx.Response(status), httpx.Response(204))
    assert send(client, "GET", URL, policy=RetryPolicy(retries=1), sleep=lambda s: None).status_code == 204
    assert len(seen) == 2


def test_send_3xx_is_an_answer_not_an_error() -> None:
    client, _ = mock_client(httpx.Response(304))
    assert send(client, "GET", URL).status_code == 304


def test_send_429_waits_out_retry_after_seconds() -> None:
    client, seen = mock_client(httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200))
    waits: list[float] = []
    assert send(client, "GET", URL, policy=RetryPolicy(retries=1, delay=2), sleep=waits.append).status_code == 200
    assert waits == [7.0] and len(seen) == 2


def test_send_retry_after_shorter_than_the_backoff_waits_the_backoff() -> None:
    client, _ = mock_client(httpx.Response(429, headers={"Retry-After": "1"}), httpx.Response(200))
    waits: list[float] = []
    send(client, "GET", URL, policy=RetryPolicy(retries=1, delay=3), sleep=waits.append)
    assert waits == [3.0]


def test_send_retry_after_is_capped_by_max_delay() -> None:
    client, _ = mock_client(httpx.Response(503, headers={"Retry-After": "3600"}), httpx.Response(200))
    waits: list[float] = []
    send(client, "GET", URL, policy=RetryPolicy(retries=1, delay=1, max_delay=60), sleep=waits.append)
    assert waits == [60.0]


def test_send_429_honours_an_http_date_retry_after() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    client, _ = mock_client(httpx.Response(429, headers={"Retry-After": when}), httpx.Response(200))
    waits: list[float] = []
    send(client, "GET", URL, policy=RetryPolicy(retries=1, delay=1), sleep=waits.append)
    [wait] = waits
    assert 27 <= wait <= 30.5  # the date has whole seconds


@pytest.mark.parametrize("value", ["soon", "Wed, 21 Oct 2015 07:28:00 GMT", "-5", ""])
def test_send_a_bad_or_past_retry_after_falls_back_to_the_backoff(value: str) -> None:
    client, _ = mock_client(httpx.Response(429, headers={"Retry-After": value}), httpx.Response(200))
    waits: list[float] = []
    send(client, "GET", URL, policy=RetryPolicy(retries=1, delay=2), sleep=waits.append)
    assert waits == [2.0]


def test_send_waits_double_from_delay_and_are_capped() -> None:
    client, _ = mock_client(httpx.Response(500))
    waits: list[float] = []
    retried: list[int] = []
    with pytest.raises(TransientError):
        send(client, "GET", URL, policy=RetryPolicy(retries=3, delay=1), sleep=waits.append,
             on_retry=lambda error, attempt: retried.append(attempt))
    assert waits == [1, 2, 4] and retried == [0, 1, 2]

    waits.clear()
    with pytest.raises(TransientError) as caught:
        send(client, "GET", URL, policy=RetryPolicy(retries=5, delay=1, max_delay=5), sleep=waits.append)
    assert waits == [1, 2, 4, 5, 5]
    assert caught.value.message.endswith("(after 5 retries)")


def test_retry_strategy_sets_what_the_pump_does_not_by_status() -> None:
    strategy = {"default": {"max_read_retries": 1, "read_retry_delay": 2},
                "429": {"max_read_retries": 5, "read_retry_delay": 10},
                "500-599": {"max_read_retries": 3}, "400,404": {"max_read_retries": 2}}
    policy = RetryPolicy.of({"read_retry_delay": 4}, "max_read_retries", "read_retry_delay", strategy=strategy)
    assert (policy.retries, policy.delay) == (1, 4.0)  # "default", with the pump's explicit delay winning
    for status, expected in [(429, (5, 4.0)), (503, (3, 4.0)), (404, (2, 4.0)), (400, (2, 4.0))]:
        rule, named = policy.for_status(status)
        assert named and (rule.retries, rule.delay) == expected, status
    assert policy.for_status(None) == (policy, False) and policy.for_status(418) == (policy, False)
    explicit = RetryPolicy.of({"max_read_retries": 0}, "max_read_retries", "read_retry_delay", strategy=strategy)
    assert explicit.for_status(503)[0].retries == 0  # a value set on the pump wins everywhere


def test_retry_strategy_most_specific_rule_wins() -> None:
    strategy = {"500-599": {"batch_retries": 1}, "503": {"batch_retries": 4}}
    policy = RetryPolicy.of({}, "batch_retries", "write_retry_delay", default_retries=3, strategy=strategy)
    assert policy.retries == 3 and policy.for_status(503)[0].retries == 4 and policy.for_status(502)[0].retries == 1


def test_send_retries_a_4xx_that_the_retry_strategy_names() -> None:
    policy = RetryPolicy.of({}, "max_read_retries", "read_retry_delay", strategy={"409": {"max_read_retries": 2}})
    client, seen = mock_client(httpx.Response(409, text="busy"), httpx.Response(409), httpx.Response(200, text="ok"))
    assert send(client, "GET", URL, policy=policy, sleep=lambda s: None).text == "ok" and len(seen) == 3
    client, seen = mock_client(httpx.Response(409, text="busy"))
    with pytest.raises(TerminalError, match=r"answered 409 Conflict: busy \(after 2 retries\)"):
        send(client, "GET", URL, policy=policy, sleep=lambda s: None)
    client, seen = mock_client(httpx.Response(404))
    with pytest.raises(TerminalError):
        send(client, "GET", URL, policy=policy, sleep=lambda s: None)
    assert len(seen) == 1  # a status no rule names keeps its kind: a 404 is not retried


def test_retry_policy_wait() -> None:
    policy = RetryPolicy(retries=10, delay=0.25, max_delay=10)
    assert [policy.wait(attempt, None) for attempt in range(7)] == [0.25, 0.5, 1, 2, 4, 8, 10]
    assert policy.wait(0, 3) == 3 and policy.wait(5, 3) == 8 and policy.wait(0, 99) == 10
    assert RetryPolicy().wait(3, None) == 0 and RetryPolicy().wait(0, 2.5) == 2.5


@pytest.mark.parametrize(("exception", "text"), [
    (httpx.ConnectError("[Errno 111] Connection refused"), "the connection failed (ConnectError: [Errno 111]"),
    (httpx.RemoteProtocolError("Server disconnected without sending a response."),
     "the connection failed (RemoteProtocolError: Server disconnected"),
    (httpx.ReadTimeout("The read operation timed out"), "timed out (ReadTimeout: The read operation timed out)"),
    (httpx.ConnectTimeout(""), "timed out (ConnectTimeout)"),
])
def test_send_retries_connection_errors_and_timeouts(exception: Exception, text: str) -> None:
    client, seen = mock_client(exception, httpx.Response(200))
    waits: list[float] = []
    errors: list[ComponentError] = []
    response = send(client, "GET", URL, policy=RetryPolicy(retries=1, delay=1), sleep=waits.append,
                    on_retry=lambda error, attempt: errors.append(error))
    assert response.status_code == 200 and len(seen) == 2 and waits == [1]
    [error] = errors
    assert isinstance(error, TransientError) and error.status is None
    assert error.message.startswith(f"GET {URL}: {text}")

    client, _ = mock_client(exception)
    with pytest.raises(TransientError) as caught:
        send(client, "GET", URL, policy=RetryPolicy(retries=2), sleep=waits.append)
    assert text in caught.value.message and caught.value.message.endswith("(after 2 retries)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_send_a_refused_connection_is_transient() -> None:
    url = f"http://127.0.0.1:{free_port()}/x"
    waits: list[float] = []
    with httpx.Client(timeout=5) as client, pytest.raises(TransientError) as caught:
        send(client, "GET", url, policy=RetryPolicy(retries=1, delay=0.01), sleep=waits.append)
    assert caught.value.message.startswith(f"GET {url}: the connection failed (ConnectError")
    assert caught.value.message.endswith("(after 1 retry)") and waits == [0.01]


# -- RetryPolicy.of ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("pump", "default_retries", "policy"), [
    ({"max_read_retries": 3, "read_retry_delay": 5}, 0, RetryPolicy(retries=3, delay=5.0)),
    ({"max_read_retries": 0, "read_retry_delay": 1.5}, 2, RetryPolicy(retries=0, delay=1.5)),
    ({"max_read_retries": 1, "read_retry_delay": "~f1.5"}, 0, RetryPolicy(retries=1, delay=1.5)),  # transit
    ({"max_read_retries": True, "read_retry_delay": "~fx"}, 0, RetryPolicy(retries=0, delay=0.0)),
    ({}, 0, RetryPolicy(retries=0, delay=0.0)),
    ({}, 4, RetryPolicy(retries=4, delay=0.0)),
    ({"max_read_retries": -1, "read_retry_delay": -2}, 2, RetryPolicy(retries=2, delay=0.0)),
    ({"max_read_retries": "3", "read_retry_delay": "5"}, 1, RetryPolicy(retries=1, delay=0.0)),
    ({"max_read_retries": 2.5, "read_retry_delay": None}, 0, RetryPolicy(retries=0, delay=0.0)),
    ({"max_write_retries": 9, "write_retry_delay": 9}, 0, RetryPolicy(retries=0, delay=0.0)),  # other keys
])
def test_retry_policy_of_a_pump_config(pump: dict[str, Any], default_retries: int, policy: RetryPolicy) -> None:
    got = RetryPolicy.of(pump, "max_read_retries", "read_retry_delay", default_retries=default_retries)
    assert got == policy
    assert isinstance(got.delay, float) and got.max_delay == 300


# -- json_entities over a real server -------------------------------------------------------------------------

ARRAY = b'[\n  {"_id": "a", "price": 22.10, "n": 1},\n  {"_id": "b", "big": 123456789012345678901234567890}\n]\n'
NDJSON = b'{"_id": "a", "x": 1e3}\n\n{"_id": "b", "tags": ["t"]}\n'
BAD = b'[\n  {"_id": "a"},\n  {"_id": oops}\n]'
ENDLESS_STRING_LIMIT = 50 * 1024 * 1024


class Written:
    """The body bytes the chunked routes sent, by path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_path: dict[str, int] = {}

    def add(self, path: str, count: int) -> None:
        with self._lock:
            self._by_path[path] = self._by_path.get(path, 0) + count

    def __getitem__(self, path: str) -> int:
        with self._lock:
            return self._by_path[path]


class Handler(BaseHTTPRequestHandler):
    """Fixed bodies by path, bodies that break off, and endless ones (``written`` counts what it sent): protocol
    tricks that :class:`~actors.testing.WebServer`'s routes do not play, so it serves this handler."""

    protocol_version = "HTTP/1.1"  # for chunked answers
    written: Written  # set by the server fixture

    def do_GET(self) -> None:
        try:
            route = getattr(self, "route_" + self.path.strip("/").replace("-", "_"), None)
            if route is None:
                self.fixed(404, b"no route")
            else:
                route()
        except (BrokenPipeError, ConnectionResetError):  # the client went away
            self.close_connection = True

    def fixed(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def start_chunked(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.written.add(self.path, len(data))

    def route_array(self) -> None:
        self.fixed(200, ARRAY)

    def route_ndjson(self) -> None:
        self.fixed(200, NDJSON)

    def route_empty(self) -> None:
        self.fixed(200, b" [ ] ")

    def route_nothing(self) -> None:
        self.fixed(200, b"")

    def route_bad(self) -> None:
        self.fixed(200, BAD)

    def route_chunked_array(self) -> None:
        self.start_chunked()
        for index in range(0, len(ARRAY), 5):
            self.chunk(ARRAY[index:index + 5])
        self.wfile.write(b"0\r\n\r\n")

    def route_short(self) -> None:  # promises more than it sends, then hangs up
        body = ARRAY[:60]
        self.send_response(200)
        self.send_header("Content-Length", str(len(ARRAY)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def route_chunked_cut(self) -> None:  # a chunk, then a hang-up without the last chunk
        self.start_chunked()
        self.chunk(ARRAY[:60])
        self.close_connection = True

    def route_close_delimited(self) -> None:  # no length: the body ends where the connection does
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(ARRAY[:60])
        self.close_connection = True

    def route_endless(self) -> None:  # entities until the client hangs up (or 200 MB)
        self.start_chunked()
        self.chunk(b"[")
        sent = 0
        for block in itertools.count():
            data = b"".join(b'{"_id": "e%d", "n": 1.5, "s": "abcdefgh"},' % (block * 1000 + i) for i in range(1000))
            self.chunk(data)
            sent += len(data)
            if sent > 200 * 1024 * 1024:
                break
        self.chunk(b'{"_id": "last"}]')
        self.wfile.write(b"0\r\n\r\n")

    def route_endless_string(self) -> None:  # one string value that never ends (the server stops at 50 MB)
        self.start_chunked()
        self.chunk(b'[{"_id": "a", "x": "')
        data = b"a" * 65536
        for _ in range(ENDLESS_STRING_LIMIT // len(data)):
            self.chunk(data)
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def written() -> Written:
    """What the module's server sent on its chunked routes."""
    return Written()


@pytest.fixture(scope="module")
def server(written: Written) -> Iterator[WebServer]:
    """One server for the module, serving :class:`Handler`."""
    counting = type("Handler", (Handler,), {"written": written})
    with WebServer(handler=counting) as web:
        yield web


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def url_of(server: WebServer, path: str) -> str:
    return server.url(f"/{path}")


def stream(client: httpx.Client, server: WebServer, path: str) -> httpx.Response:
    response = client.send(client.build_request("GET", url_of(server, path)), stream=True)
    assert response.status_code == 200
    return response


@pytest.mark.parametrize("path", ["array", "chunked-array"])
def test_json_entities_of_an_array(server: WebServer, client: httpx.Client, path: str) -> None:
    response = stream(client, server, path)
    entities = json_entities(response, chunk_size=8)
    assert next(entities) == {"_id": "a", "price": "~f22.10", "n": 1}  # decimals in wire form
    assert not response.is_closed
    assert list(entities) == [{"_id": "b", "big": 123456789012345678901234567890}]
    assert response.is_closed


def test_json_entities_of_ndjson(server: WebServer, client: httpx.Client) -> None:
    response = stream(client, server, "ndjson")
    assert list(json_entities(response)) == [{"_id": "a", "x": "~f1e3"}, {"_id": "b", "tags": ["t"]}]
    assert response.is_closed


@pytest.mark.parametrize("path", ["empty", "nothing"])
def test_json_entities_of_an_empty_body(server: WebServer, client: httpx.Client, path: str) -> None:
    response = stream(client, server, path)
    assert list(json_entities(response)) == []
    assert response.is_closed


def test_json_entities_through_send(server: WebServer, client: httpx.Client) -> None:
    response = send(client, "GET", url_of(server, "array"), stream=True)
    assert [e["_id"] for e in json_entities(response)] == ["a", "b"]
    with pytest.raises(TerminalError) as caught:
        send(client, "GET", url_of(server, "nowhere"), stream=True)
    assert caught.value.message == f"GET {url_of(server, 'nowhere')} answered 404 Not Found: no route"


def test_json_entities_of_bad_json_is_terminal(server: WebServer, client: httpx.Client) -> None:
    response = stream(client, server, "bad")
    entities = json_entities(response)
    assert next(entities) == {"_id": "a"}
    with pytest.raises(TerminalError) as caught:
        next(entities)
    url = url_of(server, "bad")
    assert caught.value.message.startswith(f"GET {url}: the answer is not a JSON array or NDJSON: line 3, column 11: "
                                         "invalid JSON: Expecting value")
    assert response.is_closed


@pytest.mark.parametrize(("path", "kind", "text"), [
    ("short", TransientError, "the body was cut off (RemoteProtocolError: peer closed connection"),
    ("chunked-cut", TransientError, "the body was cut off (RemoteProtocolError: peer closed connection"),
    # without a length the end of the connection is the end of the body: the JSON is what is incomplete
    ("close-delimited", TerminalError,
     "the answer is not a JSON array or NDJSON: line 3, column 16: invalid JSON: Unterminated string starting at"),
])
def test_json_entities_of_a_body_cut_off(server: WebServer, client: httpx.Client, path: str, kind: type,
                                         text: str) -> None:
    response = stream(client, server, path)
    got: list[Any] = []
    with pytest.raises(ComponentError) as caught:
        got.extend(json_entities(response, chunk_size=16))
    assert got in ([], [{"_id": "a", "price": "~f22.10", "n": 1}])  # as far as the reading ahead got
    assert type(caught.value) is kind
    assert caught.value.message.startswith(f"GET {url_of(server, path)}: {text}")
    assert response.is_closed


def test_json_entities_of_an_endless_array_is_lazy(server: WebServer, written: Written, client: httpx.Client) -> None:
    tracemalloc.start()
    try:
        response = stream(client, server, "endless")
        entities = json_entities(response)
        first = list(itertools.islice(entities, 10_000))
        sent = written["/endless"]
        entities.close()  # type: ignore[attr-defined]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(first) == 10_000
    assert first[0] == {"_id": "e0", "n": "~f1.5", "s": "abcdefgh"} and first[-1]["_id"] == "e9999"
    assert response.is_closed
    assert peak < 50 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    assert sent < 64 * 1024 * 1024, f"the server wrote {sent / 1e6:.1f} MB"  # read as far as consumed


def test_json_entities_of_an_endless_string_stops_at_max_value_bytes(server: WebServer, written: Written,
                                                                     client: httpx.Client) -> None:
    started = time.monotonic()
    response = stream(client, server, "endless-string")
    with pytest.raises(TerminalError) as caught:
        for _ in json_entities(response, max_value_bytes=1_000_000):
            pass
    elapsed = time.monotonic() - started
    assert caught.value.message == (f"GET {url_of(server, 'endless-string')}: the answer is not a JSON array or "
                                    "NDJSON: line 1, column 2: the value starting here is longer than 1000000 "
                                    "characters")
    assert elapsed < 20
    assert written["/endless-string"] < ENDLESS_STRING_LIMIT / 2  # it stopped long before the server did
    assert response.is_closed


# -- storage.iter_json_entities with max_value_chars -------------------------------------------------------------


def entities(data: bytes, **options: Any) -> list[tuple[Any, int]]:
    return list(storage.iter_json_entities(io.BytesIO(data), **options))


def test_a_value_over_the_limit_is_an_error_with_its_place() -> None:
    data = b'[\n {"_id": "a"},\n  {"_id": "b", "x": "' + b"y" * 500 + b'"}\n]'
    with pytest.raises(storage.JSONError) as caught:
        entities(data, chunk_size=7, max_value_chars=100)
    assert (caught.value.line, caught.value.column) == (3, 3)
    assert str(caught.value) == "line 3, column 3: the value starting here is longer than 100 characters"
    assert entities(data, chunk_size=7)[1][0]["x"] == "y" * 500  # no limit


def test_an_ndjson_value_over_the_limit_is_an_error() -> None:
    data = b'{"_id": "a"}\n{"_id": "b", "x": [' + b"1, " * 200 + b'1]}\n'
    with pytest.raises(storage.JSONError) as caught:
        entities(data, chunk_size=16, max_value_chars=64)
    assert (caught.value.line, caught.value.column) == (2, 1)


def test_a_value_over_the_limit_inside_one_chunk_is_an_error() -> None:
    with pytest.raises(storage.JSONError):
        entities(b'[{"_id": "b", "x": "' + b"y" * 500 + b'"}]', chunk_size=1 << 20, max_value_chars=100)


def test_values_under_the_limit_across_small_chunks_parse_as_a_whole() -> None:
    items = [{"_id": f"e{i}", "price": f"~f{i}.10", "text": "ø" * (i % 40), "nested": {"list": [i, 1e-3, None]}}
             for i in range(200)]
    data = json.dumps(items, indent=1).replace('"~f', "").replace('.10"', ".10").encode()
    whole = entities(data)
    assert [item for item, _ in whole][:2] == [
        {"_id": "e0", "price": "~f0.10", "text": "", "nested": {"list": [0, "~f0.001", None]}},
        {"_id": "e1", "price": "~f1.10", "text": "ø", "nested": {"list": [1, "~f0.001", None]}},
    ]
    longest = max(len(json.dumps(item, indent=2)) for item in items)
    assert longest < 500 < len(data)
    assert entities(data, chunk_size=7, max_value_chars=500) == whole
    ndjson = b"\n".join(json.dumps(item, ensure_ascii=False).encode() for item in items)
    assert entities(ndjson, chunk_size=7, max_value_chars=200) == [(item, i + 1) for i, (item, _) in enumerate(whole)]


def test_a_large_value_over_small_chunks_is_fast() -> None:
    data = b'[{"_id": "big", "x": "' + b"z" * (2 * 1024 * 1024) + b'"}, {"_id": "next", "n": 2.50}]'
    started = time.monotonic()
    got = entities(data, chunk_size=1024, max_value_chars=3 * 1024 * 1024)
    elapsed = time.monotonic() - started
    assert [item["_id"] for item, _ in got] == ["big", "next"]
    assert len(got[0][0]["x"]) == 2 * 1024 * 1024 and got[1][0]["n"] == "~f2.50"
    assert elapsed < 1, f"{elapsed:.2f} s"  # growth is geometric: the value is parsed O(log n) times


# -- SystemLink ---------------------------------------------------------------------------------------------------


def url_system(**config: Any) -> UrlSystem:
    system = build_system({"_id": "web", "type": "system:url", **config})
    assert isinstance(system, UrlSystem)
    return system


def context(**systems: Any) -> BuildContext:
    return BuildContext(pipe_id="p1", pipe={"_id": "p1"}, datasets=None,  # type: ignore[arg-type]
                        where="source", systems=systems)


def test_link_to_a_missing_system_fails_when_used() -> None:
    link = SystemLink({"system": "gone", "headers": {"X-A": "1"}}, context(web=url_system(url_pattern="http://h/%s")),
                      what="json source")
    assert link.system_id == "gone" and link.headers == {"X-A": "1"}
    for use in (lambda: link.system, lambda: link.client, lambda: link.url("x")):
        with pytest.raises(TerminalError, match="system 'gone' is not in the config"):
            use()
    assert link.url("https://elsewhere/x") == "https://elsewhere/x"  # absolute needs no system


class OtherSystem(System):
    type_name = "system:other"


@pytest.mark.parametrize("system", [
    build_system({"_id": "s", "type": "system:sqlite", "database": ":memory:"}),
    OtherSystem({"_id": "s", "type": "system:other"}),
], ids=["sqlite", "other"])
def test_link_to_a_system_of_another_kind_is_a_config_error(system: System) -> None:
    with pytest.raises(ConfigError) as caught:
        SystemLink({"system": "s"}, context(s=system), what="json source")
    assert caught.value.where == "pipe p1: source.system"
    assert caught.value.detail == (f"system 's' is a {system.config['type']}; a json source needs a system:url or "
                                   "system:microservice")


@pytest.mark.parametrize(("config", "relative", "url"), [
    ({"url_pattern": "http://h:8080/api/%s?x=1"}, "customers.json", "http://h:8080/api/customers.json?x=1"),
    ({"url_pattern": "http://h/api/"}, "customers.json", "http://h/api/customers.json"),
    ({"base_url": "http://h/api/"}, "customers.json", "http://h/api/customers.json"),
    ({"base_url": "http://h/api"}, "customers.json", "http://h/customers.json"),
    ({"url_pattern": "http://h/api/%s"}, "http://other:1/customers.json", "http://other:1/customers.json"),
    ({"base_url": "http://h/api/"}, "https://other/c.json?since=1", "https://other/c.json?since=1"),
])
def test_link_url_follows_the_system_rules(config: dict[str, Any], relative: str, url: str) -> None:
    link = SystemLink({"system": "web"}, context(web=url_system(**config)), what="json source")
    assert link.url(relative) == url


async def test_link_client_is_the_open_systems_client() -> None:
    system = url_system(url_pattern="http://api.test/%s")
    system.transport = httpx.MockTransport(lambda request: httpx.Response(200, json=[{"_id": "a", "x": 0.5}]))
    link = SystemLink({"system": "web"}, context(web=system), what="json source")
    assert link.system is system
    with pytest.raises(TransientError, match="system 'web' is not open"):
        link.client  # noqa: B018
    await system.open()
    try:
        assert link.client is system.client
        response = send(link.client, "GET", link.url("customers.json"), stream=True)
        assert list(json_entities(response)) == [{"_id": "a", "x": "~f0.5"}]
        assert str(response.url) == "http://api.test/customers.json"
    finally:
        await system.close()
    with pytest.raises(TransientError, match="not open"):
        link.client  # noqa: B018
