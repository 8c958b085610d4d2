"""Test doubles for the actor runtime (one of each: tests import them rather than write their own).

Drive time with pytest-trio's ``autojump_clock`` (a MockClock), or with :func:`thread_aware_mock_clock` when
the code under test runs work in ``trio.to_thread`` workers."""

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

from ._datasets import DatasetWrite
from ._retention import LOG_RETENTION_HOURS

__all__ = ["SQL_DIALECTS", "Answer", "EventLog", "FakeRunner", "RecordingActor", "RecordingWriters", "ScratchDatabase",
           "ScriptedCrashActor", "WebRequest", "WebServer", "autojump_unless_threads_run", "check_runner",
           "run_in_thread", "scratch_database", "thread_aware_mock_clock"]


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


class FakeRunner:
    """A complete :class:`~actors.Runner` double (it passes :func:`check_runner`): a plain pipe from
    ``config`` (by default a dataset source ``in`` and a dataset sink named after the pipe) with an int
    offset; :meth:`run` (driven by :func:`run_in_thread`) counts runs and can fail (``fail``), block until
    stopped (``block``) or take its time. No metadata, signalling on, a populated sink, nothing to reprocess,
    no known end of its source. Its source datasets come from ``source.dataset`` and its tracked datasets
    from ``config["hops"]``."""

    log_retention_hours = LOG_RETENTION_HOURS
    reprocessing_policy = "continue"
    pumped = True

    def __init__(self, pipe_id: str = "p", *, config: dict[str, Any] | None = None, source: str = "dataset",
                 changes: int = 2, processed: int = 3, **pump: Any) -> None:
        if config is None:
            config = {"_id": pipe_id, "type": "pipe", "source": {"type": source, "dataset": "in"},
                      "sink": {"type": "dataset", "dataset": pipe_id}, "pump": pump}
        self.pipe_id: str = config["_id"]
        self.original = config
        self.config: dict[str, Any] = config
        self.metadata: Mapping[str, Any] = MappingProxyType({})
        self.signalling: bool = config.get("signalling", True)
        self.offset: Any = None
        self.end = 100
        self.changes = changes
        self.processed = processed
        self.fail: str | None = None  # the message of a PipeRunError each run raises
        self.block = False  # run until asked to stop
        self.entered = threading.Event()  # a run has begun
        self.runs: list[tuple[str, float]] = []  # (kind, trio time at the start)
        self.stopped_runs = 0
        self.tracking: dict[str, int] = {}
        self.plans: list[Any] = []  # no DTL joins

    @property
    def source_config(self) -> dict[str, Any]:
        return self.config.get("source") or {}

    @property
    def sink_dataset(self) -> str | None:
        sink = self.config.get("sink") or {"dataset": self.pipe_id}
        return sink.get("dataset") if isinstance(sink, dict) else None

    @property
    def source_datasets(self) -> list[str]:
        dataset = self.source_config.get("dataset")
        return [dataset] if isinstance(dataset, str) else []

    @property
    def tracked_datasets(self) -> list[str]:
        return list(self.config.get("hops", []))

    @property
    def input_datasets(self) -> frozenset[str]:
        return frozenset(self.source_datasets) | frozenset(self.tracked_datasets)

    def run(self, *, kind: str = "auto", should_stop: Callable[[], bool] = lambda: False) -> Any:
        from ._engine import PipeRunError, RunResult

        self.runs.append((kind, trio.from_thread.run_sync(trio.current_time)))
        sync_type = "full" if kind == "full" or self.offset is None else "incremental"
        self.entered.set()
        if self.fail:
            raise PipeRunError(self.fail, entity={"_id": "bad-one", "x": 1})
        while self.block:
            if should_stop():
                self.stopped_runs += 1
                return RunResult(sync_type, processed=1, offset=self.offset, stopped=True)
            threading.Event().wait(0.001)
        self.offset = (self.offset or 0) + self.processed
        return RunResult(sync_type, processed=self.processed, changes=self.changes, source_time=0.25,
                         transform_time=0.5, sink_time=0.125, offset=self.offset)

    def get_offset(self) -> Any:
        return self.offset

    def offset_write(self, value: Any) -> DatasetWrite:
        return DatasetWrite(f"{self.pipe_id}-state", lambda _dataset: setattr(self, "offset", value))

    def end_offset_write(self) -> DatasetWrite:
        return self.offset_write(self.end)

    def tracking_offsets(self) -> dict[str, int]:
        return dict(self.tracking)

    def tracking_write(self, to: str) -> DatasetWrite:
        ends = {name: 0 if to == "start" else self.end for name in self.tracked_datasets}
        return DatasetWrite(f"{self.pipe_id}-state", lambda _dataset: setattr(self, "tracking", ends))

    def sink_populated(self) -> bool:
        return True

    def load_writes(self) -> list[DatasetWrite]:
        return []

    def sync_record(self) -> dict[str, Any] | None:
        """None: no record, so no out-of-sync check (the real runner records its config and inputs)."""
        return None

    def out_of_sync(self, recorded: Any, now: Any) -> list[dict[str, Any]]:
        return []

    def queues(self) -> dict[str, Any]:
        return {"source": 0, "dependencies": {}}

    def source_end(self) -> int | None:
        return None

    def preview(self, stage: str = "sink", since: Any = None, limit: int | None = None) -> list[dict[str, Any]]:
        return []


def check_runner(runner: Any) -> None:
    """Check that ``runner`` has everything of the :class:`~actors.Runner` protocol, with values of the right
    kinds (its methods are called: use it on a runner whose pipe may read its datasets); raises
    AssertionError naming what is missing or wrong."""
    import inspect

    from ._engine import PipeRunError
    from ._pump import Runner

    members = {name for name in dir(Runner) if not name.startswith("_")} | set(
        inspect.get_annotations(Runner))
    missing = sorted(name for name in members if not hasattr(runner, name))
    assert not missing, f"{type(runner).__name__} lacks {', '.join(missing)} of the Runner protocol"
    for name in members:
        declared = inspect.getattr_static(Runner, name, None)
        if callable(declared) and not isinstance(declared, property):
            assert callable(getattr(runner, name)), f"{type(runner).__name__}.{name} is not callable"
    assert isinstance(runner.pipe_id, str) and runner.pipe_id
    for name in ("original", "config", "source_config"):
        assert isinstance(getattr(runner, name), dict), f"{type(runner).__name__}.{name} is not a dict"
    assert isinstance(runner.pumped, bool) and isinstance(runner.signalling, bool)
    assert runner.sink_dataset is None or isinstance(runner.sink_dataset, str)
    for name in ("source_datasets", "tracked_datasets"):
        value = getattr(runner, name)
        assert isinstance(value, list) and all(isinstance(d, str) for d in value), f"{name}: {value!r}"
    assert isinstance(runner.input_datasets, frozenset)
    assert runner.input_datasets >= {*runner.source_datasets, *runner.tracked_datasets}
    assert isinstance(runner.plans, list)
    assert runner.reprocessing_policy in ("continue", "automatic", "manual")
    assert isinstance(runner.log_retention_hours, int | float)
    queues = runner.queues()
    assert isinstance(queues.get("dependencies"), dict) and "source" in queues, f"queues: {queues!r}"
    assert isinstance(runner.sink_populated(), bool)
    assert all(isinstance(write, DatasetWrite) for write in runner.load_writes())
    assert isinstance(runner.offset_write(None), DatasetWrite)
    for change in (runner.end_offset_write, lambda: runner.tracking_write("end")):
        try:
            assert isinstance(change(), DatasetWrite)
        except PipeRunError:  # a pipe that cannot do it says why (the operation is then a 400)
            pass
    assert isinstance(runner.tracking_offsets(), dict)
    record = runner.sync_record()
    assert record is None or isinstance(record, dict)
    if record is not None:
        assert isinstance(runner.out_of_sync(None, record), list)
    end = runner.source_end()
    assert end is None or type(end) is int
    assert isinstance(runner.preview("sink", limit=1), list)


class RecordingWriters:
    """Writers (:class:`~actors._pipeline.Writer`) that apply each write through ``inner`` (the node's
    :class:`~actors.DatasetWriters`; by default single writers without a supervisor over ``datasets``) and
    keep ``(dataset, returned value)`` of each in ``writes``."""

    def __init__(self, inner: Any = None, *, datasets: Any = None) -> None:
        from ._dataset_actor import DatasetWriters

        assert (inner is None) != (datasets is None), "give inner writers or datasets"
        self.inner = inner if inner is not None else DatasetWriters(datasets)
        self.writes: list[tuple[str, Any]] = []

    async def apply(self, write: DatasetWrite, *, run_on: Any = None) -> Any:
        value = await self.inner.apply(write, run_on=run_on)
        self.writes.append((write.dataset, value))
        return value

    @property
    def applied(self) -> list[str]:
        """The datasets written, in order."""
        return [dataset for dataset, _ in self.writes]

    def returned(self, dataset: str) -> list[Any]:
        """What each write to ``dataset`` returned, in order."""
        return [value for name, value in self.writes if name == dataset]


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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    web: WebServer  # what a handler of its own reaches as ``self.server.web``


class WebServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 (a free port) for tests: :meth:`route` a path (without the
    query) to answers given in turn (the last for good) or to a function of the request; every request is kept
    in ``requests``. Unrouted paths answer 404. Use as a context manager (or :meth:`start` / :meth:`close`);
    the close shuts the server down and waits for its serving thread.

    ``handler``: a :class:`~http.server.BaseHTTPRequestHandler` of the test's own to serve instead of the
    routes (slow answers, hand-made protocol errors); it reaches this object as ``self.server.web``, and its
    requests are recorded too, as they arrive (method, path, query and headers; ``body`` is ``b""``: the handler
    reads the body itself)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler] | None = None) -> None:
        self.requests: list[WebRequest] = []
        self._routes: dict[str, list[Route]] = {}
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._handler = handler

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
        handler = _handler(self) if self._handler is None else _recording(self._handler)
        server = _Server(("127.0.0.1", 0), handler)
        server.web = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, request: WebRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _answer(self, request: WebRequest) -> Answer:
        with self._lock:
            self.requests.append(request)
            routes = self._routes.get(request.path)
            if not routes:
                return Answer(404, b'{"error": "no route"}')
            route = routes.pop(0) if len(routes) > 1 else routes[0]
        return route(request) if callable(route) else route


def _request_of(handler: BaseHTTPRequestHandler, body: bytes) -> WebRequest:
    parts = urlsplit(handler.path)
    return WebRequest(handler.command, parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)),
                      {k.lower(): v for k, v in handler.headers.items()}, body)


def _recording(handler: type[BaseHTTPRequestHandler]) -> type[BaseHTTPRequestHandler]:
    """``handler``, recording each request in its server's :class:`WebServer` once its headers are read."""

    class Recording(handler):  # type: ignore[valid-type,misc]
        def parse_request(self) -> bool:
            parsed: bool = super().parse_request()
            if parsed:
                server: Any = self.server
                server.web.record(_request_of(self, b""))
            return parsed

    Recording.__name__ = Recording.__qualname__ = handler.__name__
    return Recording


def _handler(web: WebServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_one(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            answer = web._answer(_request_of(self, body))
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
