"""Test doubles for the actor runtime. Drive time with pytest-trio's ``autojump_clock`` (a MockClock), or
with :func:`thread_aware_mock_clock` when the code under test runs work in ``trio.to_thread`` workers."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import trio
import trio.testing

from ._retention import LOG_RETENTION_HOURS

__all__ = ["SQL_DIALECTS", "Answer", "EventLog", "RecordingActor", "RunnerDouble", "ScratchDatabase",
           "ScriptedCrashActor", "WebRequest", "WebServer", "autojump_unless_threads_run", "run_in_thread",
           "scratch_database", "thread_aware_mock_clock"]


def autojump_unless_threads_run(clock: trio.testing.MockClock) -> trio.testing.MockClock:
    """Make an autojumping ``clock`` stand still while worker threads run; returns the same clock.

    A plain autojump clock counts a task waiting for ``trio.to_thread`` as idle and jumps to the next
    deadline in the middle of the thread's work; with this one, work in a worker thread takes no virtual
    time. (``MockClock`` is final, so this patches the instance rather than subclassing.) Only threads
    holding a token of the default thread limiter count.
    """
    jump = clock._autojump

    def autojump() -> None:
        if trio.to_thread.current_default_thread_limiter().statistics().borrowed_tokens:
            time.sleep(0.0002)  # a worker thread is busy: don't jump, let it have the GIL
            return
        jump()

    clock._autojump = autojump  # type: ignore[method-assign]
    return clock


def thread_aware_mock_clock(autojump_threshold: float = 0) -> trio.testing.MockClock:
    """A new autojumping ``MockClock`` that does not jump while worker threads run (see
    :func:`autojump_unless_threads_run`); pytest-trio's ``autojump_clock`` uses threshold 0."""
    return autojump_unless_threads_run(trio.testing.MockClock(autojump_threshold=autojump_threshold))


class RecordingActor:
    """Appends every message it receives to ``received`` (shared across restarts)."""

    def __init__(self, received: list[Any]) -> None:
        self.received = received

    async def run(self, mailbox: trio.MemoryReceiveChannel[Any]) -> None:
        async for message in mailbox:
            self.received.append(message)


class ScriptedCrashActor:
    """Records messages and raises on the message ``"crash"``."""

    def __init__(self, received: list[Any]) -> None:
        self.received = received

    async def run(self, mailbox: trio.MemoryReceiveChannel[Any]) -> None:
        async for message in mailbox:
            if message == "crash":
                raise RuntimeError("asked to crash")
            self.received.append(message)


class EventLog(list[tuple[str, dict[str, Any]]]):
    """An ``on_event`` sink that keeps the events."""

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        self.append((kind, data))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self]


class RunnerDouble:
    """A base for :class:`~actors.PipeRunner` doubles: everything the pump and the node ask of a runner, with
    the answers of a plain pipe (no metadata, no hops, signalling, a populated sink, nothing to reprocess, no
    known end of its source), so production code never needs fallbacks for doubles. Subclasses set
    ``pipe_id`` and ``config`` and implement what their test drives (``run``, offsets)."""

    pipe_id: str = "p"
    config: dict[str, Any]  # each double's own
    metadata: Mapping[str, Any] = MappingProxyType({})
    pumped = True
    signalling = True
    source_datasets: tuple[str, ...] | list[str] = ()
    tracked_datasets: tuple[str, ...] | list[str] = ()
    sink_dataset: str | None = None
    log_retention_hours = LOG_RETENTION_HOURS
    reprocessing_policy = "continue"

    @property
    def source_config(self) -> dict[str, Any]:
        return self.config.get("source") or {}

    def sink_populated(self) -> bool:
        return True

    def sync_record(self) -> dict[str, Any] | None:
        """None: no record, so no out-of-sync check (the real runner records its config and inputs)."""
        return None

    def out_of_sync(self, recorded: Any, now: Any) -> list[dict[str, Any]]:
        return []

    def load_writes(self) -> list[Any]:
        return []

    def queues(self) -> dict[str, Any]:
        return {"source": 0, "dependencies": {}}

    def source_end(self) -> int | None:
        return None


async def run_in_thread(runner: Any, *, kind: str, writers: Any, should_stop: Callable[[], bool],
                        on_begin: Callable[[Any], None] | None = None) -> Any:
    """A pump driver for runner doubles: ``runner.run(kind=..., should_stop=...)`` in a worker thread (the
    real driver is :func:`actors.run_pipeline`)."""
    return await trio.to_thread.run_sync(lambda: runner.run(kind=kind, should_stop=should_stop))


# -- a web server double for HTTP components ------------------------------------------------------------


@dataclass(frozen=True)
class WebRequest:
    """One request a :class:`WebServer` got."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Answer:
    """What a :class:`WebServer` answers: ``chunks`` (an iterable of bytes) streams a chunked body instead
    of ``body``; ``hang_up_after`` bytes of ``body`` are sent, then the connection is closed mid-body."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    chunks: Any = None
    delay: float = 0.0
    hang_up_after: int | None = None

    @classmethod
    def json(cls, value: Any, status: int = 200, **kwargs: Any) -> Answer:
        return cls(status, json.dumps(value).encode(), **kwargs)


Route = Answer | Callable[[WebRequest], Answer]


class WebServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 for tests: :meth:`route` a path (without the query) to answers
    given in turn (the last for good) or to a function of the request; every request is kept in ``requests``.
    Unrouted paths answer 404. Use as a context manager (or :meth:`start` / :meth:`close`)."""

    def __init__(self) -> None:
        self.requests: list[WebRequest] = []
        self._routes: dict[str, list[Route]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- configuring ------------------------------------------------------------------------------------

    def route(self, path: str, *answers: Route | bytes | int) -> None:
        """Answer requests for ``path`` with ``answers`` in turn (bytes: a 200 JSON body; an int: that status)."""
        made = [Answer(a, b'{"error": "%d"}' % a) if isinstance(a, int) else Answer(body=a) if isinstance(a, bytes)
                else a for a in answers]
        with self._lock:
            self._routes[path] = made

    def url(self, path: str = "") -> str:
        assert self._server is not None, "the server is not started"
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def port(self) -> int:
        assert self._server is not None, "the server is not started"
        return int(self._server.server_address[1])

    def of(self, path: str) -> list[WebRequest]:
        """The requests for ``path``."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # -- running ------------------------------------------------------------------------------------------

    def start(self) -> WebServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _answer(self, request: WebRequest) -> Answer:
        with self._lock:
            self.requests.append(request)
            routes = self._routes.get(request.path)
            if not routes:
                return Answer(404, b'{"error": "no route"}')
            route = routes.pop(0) if len(routes) > 1 else routes[0]
        return route(request) if callable(route) else route


def _handler(web: WebServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_one(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = WebRequest(self.command, parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)),
                                 {k.lower(): v for k, v in self.headers.items()}, body)
            answer = web._answer(request)
            if answer.delay:
                time.sleep(answer.delay)
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            try:
                if answer.chunks is not None:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for chunk in answer.chunks:
                        if chunk:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                if answer.hang_up_after is not None:
                    self.wfile.write(answer.body[:answer.hang_up_after])
                    self.close_connection = True
                    return
                self.wfile.write(answer.body)
            except (BrokenPipeError, ConnectionResetError):  # the client went away
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_one

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


# -- scratch SQL databases for SQL components ------------------------------------------------------------

SQL_DIALECTS = ("postgresql", "mysql", "sqlite")
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"  # this machine's loopback servers
MARIA_ADMIN = "mysql+pymysql://root:@127.0.0.1:3306/test"


class ScratchDatabase:
    """A database made for one test (see :func:`scratch_database`): the config of a system ``db`` on it,
    a way to run SQL in it (autocommitted) and to open that system."""

    def __init__(self, dialect: str, system: dict[str, Any], url: Any) -> None:
        import sqlalchemy

        self.dialect = dialect
        self.system_config = system
        self.engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.NullPool)
        self.opened: list[Any] = []

    def run(self, *statements: str, **params: Any) -> None:
        import sqlalchemy

        with self.engine.begin() as connection:
            for statement in statements:
                connection.execute(sqlalchemy.text(statement), params)

    def rows(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        import sqlalchemy

        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sqlalchemy.text(query), params)]

    def system(self, **extra: Any) -> Any:
        """The SQL system, built and opened (closed when the scratch database goes)."""
        from .components import build_system

        system = build_system({**self.system_config, **extra})
        trio.run(system.open)
        self.opened.append(system)
        return system


@contextmanager
def scratch_database(dialect: str, directory: Any) -> Iterator[ScratchDatabase]:
    """A new database on the loopback PostgreSQL or MariaDB server (dropped afterwards), or a SQLite file
    in ``directory``."""
    import sqlalchemy

    name = f"sesamd_test_{uuid.uuid4().hex[:12]}"
    admin = None
    if dialect == "sqlite":
        path = f"{directory}/{name}.sqlite"
        db = ScratchDatabase(dialect, {"_id": "db", "type": "system:sqlite", "database": path}, f"sqlite:///{path}")
    else:
        admin_url = PG_ADMIN if dialect == "postgresql" else MARIA_ADMIN
        admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.NullPool)
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
        if dialect == "postgresql":
            system = {"_id": "db", "type": "system:postgresql", "host": "127.0.0.1", "database": name,
                      "username": "postgres", "pool_size": 2}
        else:
            system = {"_id": "db", "type": "system:mysql", "host": "127.0.0.1", "database": name,
                      "username": "root", "password": "", "pool_size": 2}
        db = ScratchDatabase(dialect, system, sqlalchemy.make_url(admin_url).set(database=name))
    try:
        yield db
    finally:
        for opened in db.opened:
            trio.run(opened.close)
        db.engine.dispose()
        if admin is not None:
            with admin.connect() as connection:
                force = " WITH (FORCE)" if dialect == "postgresql" else ""
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{force}")
            admin.dispose()
