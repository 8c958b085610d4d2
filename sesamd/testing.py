"""Test helpers for the daemon: an in-process API client that carries a token of a chosen role, and a real
``sesamd serve`` subprocess."""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import trio
from quart_trio import QuartTrio

from ._auth import Authenticator
from .api._context import ApiContext

__all__ = ["Daemon", "OpenAuthenticator", "TokenClient", "load_bench_script", "logging_restored",
           "quick_progress_engine", "run_pipe_over_http", "serve_process", "serve_with_config",
           "started_process", "token_for"]


def token_for(app: QuartTrio, role: str = "admin") -> str:
    """A token of ``role`` signed with the app's key."""
    context: ApiContext = app.extensions["sesamd"]
    return context.auth.mint(role, subject=f"test-{role}")


@contextmanager
def logging_restored() -> Iterator[None]:
    """Put back the root logger's handlers and every logger's level when the block ends (a file handler
    :func:`sesamd._logging.configure_file` installed in the block is closed)."""
    from . import _logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logger.level for name, logger in logging.Logger.manager.loggerDict.items()
              if isinstance(logger, logging.Logger)}
    try:
        yield
    finally:
        if not any(h.get_name() == _logging.FILE_HANDLER_NAME for h in handlers):
            _logging.stop_file()
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, logger in logging.Logger.manager.loggerDict.items():
            if isinstance(logger, logging.Logger):
                logger.setLevel(levels.get(name, logging.NOTSET))


class TokenClient:
    """Quart's test client with ``Authorization: Bearer <token>`` on every request (``token=None``: none)."""

    def __init__(self, app: QuartTrio, role: str | None = "admin", *, token: str | None = None) -> None:
        self.app = app
        self.client = app.test_client()
        self.token = token if token is not None else (token_for(app, role) if role is not None else None)

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        merged = dict(headers or {})
        if self.token is not None:
            merged.setdefault("Authorization", f"Bearer {self.token}")
        return merged

    async def open(self, path: str, *, method: str = "GET", headers: dict[str, str] | None = None,
                   **kwargs: Any) -> Any:
        return await self.client.open(path, method=method, headers=self._headers(headers), **kwargs)

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.open(path, method="GET", **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Any:
        return await self.open(path, method="POST", **kwargs)

    async def put(self, path: str, **kwargs: Any) -> Any:
        return await self.open(path, method="PUT", **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> Any:
        return await self.open(path, method="PATCH", **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Any:
        return await self.open(path, method="DELETE", **kwargs)

    async def wait_idle(self, pipe_id: str, timeout: float = 10) -> dict[str, Any]:
        """Poll the pump until no run is in progress; returns its runtime."""
        with trio.fail_after(timeout):
            while True:
                response = await self.get(f"/api/pipes/{quote(pipe_id, safe='')}/pump")
                assert response.status_code == 200, await response.get_data()
                runtime: dict[str, Any] = (await response.get_json())["runtime"]
                if not runtime["is-running"]:
                    return runtime
                await trio.sleep(0.01)

    async def run_pipe(self, pipe_id: str) -> dict[str, Any]:
        """Start a run (after the one a signal may have started: a 409) and wait until the pump is idle."""
        while True:
            response = await self.post(f"/api/pipes/{quote(pipe_id, safe='')}/pump", form={"operation": "start"})
            if response.status_code != 409:
                assert response.status_code == 200, await response.get_data()
                return await self.wait_idle(pipe_id)
            await self.wait_idle(pipe_id)


class Daemon:
    """A ``sesamd serve`` subprocess (see :func:`serve_process`): its API URL and an admin token."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, data_dir: Path, log: Path) -> None:
        self.process, self.url, self.data_dir, self.log = process, url, data_dir, log
        self.token = Authenticator(data_dir).mint("admin", subject="test-daemon")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http"):]

    def terminate(self, timeout: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


@contextmanager
def started_process(argv: list[str], log: Path, ready: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Run ``argv`` (stderr appended to ``log``) until a stdout line starts with ``ready``; yields the process
    and that line. The other stdout lines (log lines: ``sesamd._logging``) go to ``log`` too, copied by a
    thread so that the pipe never fills. The process is killed when the block ends if it is still running."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as err:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=env)
    copier = None
    try:
        assert process.stdout is not None
        with log.open("ab") as out:
            for raw in iter(process.stdout.readline, b""):
                line = raw.decode()
                if line.startswith(ready):
                    break
                out.write(raw)
            else:
                line = ""
        if not line.startswith(ready):
            process.kill()
            raise AssertionError(f"{argv[1:3]} did not start: {line!r}\n{log.read_text()}")
        copier = threading.Thread(target=_copy_lines, args=(process.stdout, log), daemon=True)
        copier.start()
        yield process, line
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        if copier is not None:
            copier.join(10)
        if process.stdout is not None:
            process.stdout.close()


def _copy_lines(stream: Any, log: Path) -> None:
    with log.open("ab") as out:
        for raw in iter(stream.readline, b""):
            out.write(raw)
            out.flush()


@contextmanager
def serve_process(data_dir: str | Path, *args: str) -> Iterator[Daemon]:
    """Run ``sesamd serve --port 0`` on ``data_dir`` (stderr to ``<data_dir>.log``) until the block ends."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir.with_name(data_dir.name + ".log")
    argv = [sys.executable, "-m", "sesamd._cli", "serve", "--port", "0", "--data-dir", str(data_dir), *args]
    with started_process(argv, log, "sesamd: serving ") as (process, line):
        yield Daemon(process, line.split()[2], data_dir, log)


@contextmanager
def serve_with_config(data_dir: str | Path, config: list[Any], *args: str) -> Iterator[Daemon]:
    """:func:`serve_process` with ``config`` uploaded (``PUT /api/config``) before the block; the daemon must
    exit 0 after it."""
    import httpx

    with serve_process(data_dir, *args) as server:
        response = httpx.put(server.url + "/config", json=config, headers=server.headers)
        assert response.status_code == 200, response.text
        yield server
        assert server.terminate() == 0


def run_pipe_over_http(client: Any, pipe_id: str, timeout: float = 30) -> dict[str, Any]:
    """Start a run of ``pipe_id`` through the API (``client``: an ``httpx.Client`` on the daemon's ``/api``)
    and wait until it has ended; its pump runtime after it."""
    import time

    before = client.get(f"/pipes/{pipe_id}/pump").json()["runtime"].get("last-run")
    response = client.post(f"/pipes/{pipe_id}/pump", data={"operation": "start"})
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + timeout
    while True:
        runtime: dict[str, Any] = client.get(f"/pipes/{pipe_id}/pump").json()["runtime"]
        if not runtime["is-running"] and runtime.get("last-run") != before:
            return runtime
        assert time.monotonic() < deadline, f"pipe {pipe_id} is still running: {runtime}"
        time.sleep(0.05)


class OpenAuthenticator(Authenticator):
    """A test and benchmark double: every request is an admin, whatever its ``Authorization`` header says.

    It checks nothing (no header, no signature, no expiry); ``scripts/bench/api.py`` serves the API with it
    beside a real :class:`Authenticator` to measure what verifying a token costs. Never for production code.
    It still makes the data directory's key (as its base class does), so it can mint tokens.
    """

    def __init__(self, data_dir: str | Path, **kwargs: Any) -> None:
        from ._auth import ROLES, Principal

        super().__init__(data_dir, **kwargs)
        self.principal = Principal("open-authenticator", "admin", ROLES["admin"])

    def verify(self, token: str) -> Any:
        return self.principal

    def authenticate(self, authorization: str | None) -> Any:
        return self.principal


def load_bench_script(name: str) -> Any:
    """``scripts/bench/<name>.py`` of this checkout as a module (``sesamd_bench_<name>``, loaded once), for the
    benchmarks' tests. While it loads, ``scripts/bench`` is on ``sys.path`` (for ``import _common``), after the
    project root, since it holds ``dtl.py`` and ``storage.py``, which would shadow the packages; the path is
    put back afterwards."""
    module_name = f"sesamd_bench_{name}"
    module = sys.modules.get(module_name)
    if module is None:
        root = Path(__file__).resolve().parents[1]
        script = root / "scripts" / "bench" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(module_name, script)
        assert spec is not None and spec.loader is not None, script
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        saved = list(sys.path)
        sys.path[0:0] = [str(root), str(script.parent)]
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path[:] = saved
    return module


def quick_progress_engine(interval: float = 0.02) -> Any:
    """The real engine (``sesamd._node.default_engine``), with pipe actors that publish ``pump-progress``
    every ``interval`` seconds instead of every second."""
    from ._node import default_engine

    engine = default_engine()
    make = engine.make_actor

    def make_actor(pipe_id: str, runner: Any, node: Any) -> Any:
        actor = make(pipe_id, runner, node)
        actor.progress_interval = interval
        return actor

    engine.make_actor = make_actor
    return engine
