"""``sesamd serve``: the node and its API in one Trio run (Hypercorn's Trio worker, quart-trio app).

Its options are settings (:mod:`sesamd._settings`): flags, ``SESAMD_*`` variables, a TOML file, defaults.
``--config FILE`` loads a JSON array of config entities at start and polls the file's modification time;
an edit, or SIGHUP (``systemctl reload``), re-applies it, restarting only the pipes whose entity changed (an
invalid edit is logged and the running config is kept).

Under systemd (``Type=notify``, :mod:`sesamd._notify`) it says READY=1 once the API listens and the config is
applied, refreshes a STATUS line with the pipe counts every few seconds, pings the watchdog from the loop,
and says RELOADING=1 ... READY=1 around a SIGHUP and STOPPING=1 on SIGTERM.

SIGTERM or Ctrl-C: the node stops taking new runs, running batches commit (``--grace`` seconds, the drain
timeout), the server drains its requests, and the process exits 0. Whatever still runs
:data:`HARD_STOP_MARGIN` seconds past the grace is cancelled, so a stop always ends.

Datasets are opened with LevelDB's node profile (``storage.LevelDBOptions.NODE``); ``--dataset-write-buffer-mb``
and ``--dataset-cache-mb`` change its write buffer and block cache (per open dataset).
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

import storage

from . import _notify, _settings
from ._config import ConfigValidationError, parse_config
from ._health import pipe_counts
from ._process import freeze_startup, tune_process

if TYPE_CHECKING:  # the server stack is imported when serving, not for every command
    import hypercorn.config

    from ._node import Engine, Node

__all__ = ["ServeError", "add_command", "dataset_options", "serve"]

log = logging.getLogger("sesamd")

DEFAULT_PORT = 9042
STATUS_INTERVAL = 5.0  # seconds between STATUS lines to systemd
HARD_STOP_MARGIN = 15.0  # seconds past the grace after which a stop cancels what still runs
HTTP_DRAIN = 5.0  # seconds the server gives open requests at shutdown


class ServeError(Exception):
    """The node could not start (bad config file, port in use, ...)."""


def add_command(commands: Any) -> None:
    p = commands.add_parser("serve", help="run the node and its REST API")
    _settings.add_arguments(p)
    p.set_defaults(handler=_cmd_serve)


def dataset_options(write_buffer_mb: int | None = None, cache_mb: int | None = None) -> storage.LevelDBOptions:
    """The node profile with the sizes given (in MiB) changed."""
    options = storage.LevelDBOptions.NODE
    if write_buffer_mb is not None:
        options = options.replace(write_buffer_size=write_buffer_mb << 20)
    if cache_mb is not None:
        options = options.replace(lru_cache_size=cache_mb << 20)
    return options


def _cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings.resolve(_settings.flag_values(args), settings=args.settings)
    tune_process()
    _configure_logging(settings)
    options = dataset_options(settings["dataset_write_buffer_mb"], settings["dataset_cache_mb"])
    notifier = _notify.Notifier.from_environ()
    try:
        trio.run(lambda: serve(settings["data_dir"], host=settings["host"], port=settings["port"],
                               config_file=settings["config"], poll_interval=settings["poll_interval"],
                               grace=settings["grace"], dataset_options=options, notifier=notifier))
    except (ServeError, BaseExceptionGroup) as exc:
        errors = _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
        if not all(isinstance(e, ServeError) for e in errors):
            raise
        print(f"sesamd: error: {errors[0]}", file=sys.stderr)
        return 2
    finally:
        notifier.close()
        _stop_log_file()
    return 0


def _configure_logging(settings: _settings.Effective) -> None:
    """Log lines on stdout, and the same lines in the rotating log file of ``log_dir`` unless it is off."""
    from ._logging import LoggingError, configure, configure_file

    configure(settings["log_format"], settings["log_level"])
    directory = _settings.log_directory(settings)
    if directory is not None:
        try:
            configure_file(directory, settings["log_format"], max_bytes=settings["log_file_mb"] << 20,
                           backups=settings["log_file_count"])
        except LoggingError as exc:
            raise _settings.SettingsError(f"log_dir: {exc}") from None


def _stop_log_file() -> None:
    from ._logging import stop_file

    stop_file()  # flushed and closed: the file handler lives as long as the command


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


async def _reapply(node: Node, path: Path | None, notifier: _notify.Notifier) -> None:
    """SIGHUP: re-apply the config file between RELOADING=1 and READY=1 (an invalid one is logged, and the
    running config kept)."""
    notifier.send(_notify.Reloading.now(), _notify.Status("reloading the config file"))
    try:
        if path is None:
            log.warning("received SIGHUP, but there is no --config file to re-apply")
        else:
            try:
                await _apply_file(node, path)
                log.info("received SIGHUP: re-applied the config file %s", path)
            except ServeError as exc:
                log.error("%s (keeping the running config)", exc)
    finally:
        notifier.send(_notify.Ready(), _notify.Status(pipe_counts(node).text()))


async def _report_status(node: Node, notifier: _notify.Notifier, interval: float) -> None:
    """A STATUS line with the pipe counts every ``interval`` seconds."""
    while True:
        await trio.sleep(interval)
        notifier.send(_notify.Status(pipe_counts(node).text()))


async def _stall_for_tests(after: float) -> None:
    await trio.sleep(after)
    _notify.stall_loop()


async def serve(data_dir: str | Path, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                config_file: str | Path | None = None, engine: Engine | None = None, poll_interval: float = 1.0,
                grace: float = 30.0, dataset_options: storage.LevelDBOptions | None = None,
                notifier: _notify.Notifier | None = None, status_interval: float = STATUS_INTERVAL,
                task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Run a node with its API until SIGTERM/SIGINT (or cancellation); reports the API URL when ready.

    ``dataset_options``: the LevelDB options of the node's datasets (default: the node profile);
    ``notifier``: where systemd hears from the node (default: nowhere).
    """
    import hypercorn.config

    from ._node import open_node
    from .api import create_app

    notifier = notifier or _notify.Notifier(None)
    path = Path(config_file) if config_file is not None else None
    hard_stop = trio.CancelScope()  # past the grace and a margin, a stop cancels what still runs
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals, hard_stop:
        async with open_node(data_dir, engine, dataset_options=dataset_options) as node:
            if path is not None:
                await _apply_file(node, path)
            freeze_startup()
            config = hypercorn.config.Config()
            config.bind = [f"{host}:{port}"]
            config.accesslog = None
            config.errorlog = logging.getLogger("hypercorn.error")
            config.graceful_timeout = HTTP_DRAIN
            config.websocket_ping_interval = 20.0  # (a request body that stops arriving: api._idle_body)
            stopping = trio.Event()
            server_stop = trio.Event()
            async with trio.open_nursery() as nursery:

                async def on_signals() -> None:
                    async for signum in signals:
                        if signum == signal.SIGHUP:
                            nursery.start_soon(_reapply, node, path, notifier)
                            continue
                        if not stopping.is_set():
                            log.info("received %s: stopping", signal.Signals(signum).name)
                            notifier.send(_notify.Stopping(), _notify.Status("stopping: running batches commit"))
                            hard_stop.deadline = trio.current_time() + grace + HTTP_DRAIN + HARD_STOP_MARGIN
                        stopping.set()

                nursery.start_soon(on_signals)
                if path is not None:
                    nursery.start_soon(_watch_config, node, path, poll_interval)
                async with trio.open_nursery() as server:
                    binds = await _start_server(server, create_app(node), config, server_stop.wait, host, port)
                    url = binds[0].rstrip("/") + "/api"
                    print(f"sesamd: serving {url} (data dir {Path(data_dir)}, pid {os.getpid()})", flush=True)
                    task_status.started(url)
                    notifier.send(_notify.Ready(), _notify.Status(pipe_counts(node).text()))
                    interval = _notify.watchdog_interval(os.environ, os.getpid())
                    if notifier.enabled and interval is not None:
                        nursery.start_soon(_notify.watchdog, notifier, interval)
                    if notifier.enabled:
                        nursery.start_soon(_report_status, node, notifier, status_interval)
                    stall = _notify.testing_stall_after()
                    if stall is not None:
                        nursery.start_soon(_stall_for_tests, stall)
                    await stopping.wait()
                    await node.stop_runs(grace)
                    server_stop.set()  # the server drains its requests, then returns
                nursery.cancel_scope.cancel()
    if hard_stop.cancelled_caught:
        log.warning("stopping took longer than the grace of %g s: what still ran was cancelled", grace)
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
        raise ServeError(_listen_error(host, port, _leaves(group)[0])) from None
    return binds


def _listen_error(host: str, port: int, error: BaseException) -> str:
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
        return f"address {address} is already in use (is another sesamd running?)"
    if isinstance(error, OSError) and error.strerror:
        return f"cannot listen on {address}: {error.strerror}"
    return f"cannot listen on {address}: {error}"
