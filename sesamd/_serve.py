"""``sesamd serve``: the node and its API in one Trio run (Hypercorn's Trio worker, quart-trio app).

``--config FILE`` loads a JSON array of config entities at start and polls the file's modification time;
an edit re-applies it, restarting only the pipes whose entity changed (an invalid edit is logged and the
running config is kept). SIGTERM or Ctrl-C: the node stops taking new runs, running batches commit, the
server drains, and the process exits 0.

Datasets are opened with LevelDB's node profile (``storage.LevelDBOptions.NODE``); ``--dataset-write-buffer-mb``
and ``--dataset-cache-mb`` change its write buffer and block cache (per open dataset).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

import storage

from ._config import ConfigValidationError, parse_config
from ._process import freeze_startup, tune_process

if TYPE_CHECKING:  # the server stack is imported when serving, not for every command
    import hypercorn.config

    from ._node import Engine, Node

__all__ = ["ServeError", "add_command", "dataset_options", "serve"]

log = logging.getLogger("sesamd")

DEFAULT_PORT = 9042


class ServeError(Exception):
    """The node could not start (bad config file, port in use, ...)."""


def add_command(commands: Any) -> None:
    p = commands.add_parser("serve", help="run the node and its REST API")
    p.add_argument("--data-dir", default="data", help="the node's data directory (default: ./data)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0 = any free)")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="a JSON array of config entities to load at start and re-apply when the file changes")
    p.add_argument("--poll-interval", type=float, default=1.0, help=argparse.SUPPRESS)
    p.add_argument("--grace", type=float, default=30.0,
                   help="seconds running batches get to commit at shutdown (default: 30)")
    node = storage.LevelDBOptions.NODE
    p.add_argument("--dataset-write-buffer-mb", type=_megabytes(MAX_WRITE_BUFFER_MB), default=None, metavar="N",
                   help=f"LevelDB write buffer of each open dataset in MiB, 1-{MAX_WRITE_BUFFER_MB}; up to two per "
                        f"dataset are in memory (default: {node.write_buffer_size >> 20})")
    p.add_argument("--dataset-cache-mb", type=_megabytes(MAX_CACHE_MB), default=None, metavar="N",
                   help=f"LevelDB block cache of each open dataset in MiB, 1-{MAX_CACHE_MB} "
                        f"(default: {node.lru_cache_size >> 20})")
    p.set_defaults(handler=_cmd_serve)


MAX_WRITE_BUFFER_MB = 1024  # LevelDB clips larger write buffers
MAX_CACHE_MB = 65536


def _megabytes(maximum: int) -> Any:
    """An argparse type: a whole number of MiB from 1 to ``maximum``."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            value = None
        if value is None or not 1 <= value <= maximum:
            raise argparse.ArgumentTypeError(f"must be a whole number of MiB from 1 to {maximum}, not {text!r}")
        return value

    return parse


def dataset_options(write_buffer_mb: int | None = None, cache_mb: int | None = None) -> storage.LevelDBOptions:
    """The node profile with the sizes given (in MiB) changed."""
    options = storage.LevelDBOptions.NODE
    if write_buffer_mb is not None:
        options = options.replace(write_buffer_size=write_buffer_mb << 20)
    if cache_mb is not None:
        options = options.replace(lru_cache_size=cache_mb << 20)
    return options


def _cmd_serve(args: argparse.Namespace) -> int:
    tune_process()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = dataset_options(args.dataset_write_buffer_mb, args.dataset_cache_mb)
    try:
        trio.run(lambda: serve(args.data_dir, host=args.host, port=args.port, config_file=args.config,
                               poll_interval=args.poll_interval, grace=args.grace, dataset_options=options))
    except (ServeError, BaseExceptionGroup) as exc:
        errors = _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
        if not all(isinstance(e, ServeError) for e in errors):
            raise
        print(f"sesamd: error: {errors[0]}", file=sys.stderr)
        return 2
    return 0


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


def _read_config(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ServeError(f"cannot read the config file {path}: {exc.strerror or exc}") from None
    return parse_config(data)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


async def _apply_file(node: Node, path: Path) -> None:
    try:
        entities = _read_config(path)
        await node.apply_config(entities)
    except ConfigValidationError as exc:
        lines = "\n".join(f"  {e['elements']}: {e['msg']}" for e in exc.errors)
        raise ServeError(f"the config file {path} is invalid:\n{lines}") from None


async def _watch_config(node: Node, path: Path, interval: float) -> None:
    """Re-apply the config file whenever its modification time or size changes."""
    seen = _stamp(path)
    while True:
        await trio.sleep(interval)
        stamp = _stamp(path)
        if stamp is None or stamp == seen:
            continue
        seen = stamp
        try:
            await _apply_file(node, path)
            log.info("re-applied the config file %s", path)
        except ServeError as exc:
            log.error("%s (keeping the running config)", exc)


async def serve(data_dir: str | Path, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                config_file: str | Path | None = None, engine: Engine | None = None, poll_interval: float = 1.0,
                grace: float = 30.0, dataset_options: storage.LevelDBOptions | None = None,
                task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Run a node with its API until SIGTERM/SIGINT (or cancellation); reports the API URL when ready.

    ``dataset_options``: the LevelDB options of the node's datasets (default: the node profile).
    """
    import hypercorn.config

    from ._node import open_node
    from .api import create_app

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with open_node(data_dir, engine, dataset_options=dataset_options) as node:
            path = Path(config_file) if config_file is not None else None
            if path is not None:
                await _apply_file(node, path)
            freeze_startup()
            config = hypercorn.config.Config()
            config.bind = [f"{host}:{port}"]
            config.accesslog = None
            config.errorlog = logging.getLogger("hypercorn.error")
            config.graceful_timeout = 5.0
            config.websocket_ping_interval = 20.0  # (a request body that stops arriving: api._idle_body)
            stopping = trio.Event()
            server_stop = trio.Event()
            async with trio.open_nursery() as nursery:

                async def on_signals() -> None:
                    async for signum in signals:
                        log.info("received %s: stopping", signal.Signals(signum).name)
                        stopping.set()

                nursery.start_soon(on_signals)
                if path is not None:
                    nursery.start_soon(_watch_config, node, path, poll_interval)
                async with trio.open_nursery() as server:
                    binds = await _start_server(server, create_app(node), config, server_stop.wait, host, port)
                    url = binds[0].rstrip("/") + "/api"
                    print(f"sesamd: serving {url} (data dir {Path(data_dir)}, pid {os.getpid()})", flush=True)
                    task_status.started(url)
                    await stopping.wait()
                    await node.stop_runs(grace)
                    server_stop.set()  # the server drains its requests, then returns
                nursery.cancel_scope.cancel()
    log.info("stopped")


async def _start_server(nursery: trio.Nursery, app: Any, config: hypercorn.config.Config, trigger: Any,
                        host: str, port: int) -> list[str]:
    import hypercorn.trio

    from ._hypercorn_guard import install

    install()

    async def run(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        await hypercorn.trio.serve(app, config, shutdown_trigger=trigger, task_status=task_status)

    try:
        binds: list[str] = await nursery.start(run)
    except* OSError as group:
        error = group.exceptions[0]
        raise ServeError(f"cannot listen on {host}:{port}: {getattr(error, 'strerror', None) or error}") from None
    return binds
