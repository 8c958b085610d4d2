"""The sesamclient CLI's pump commands: show a pipe's pump, run an operation on it (``POST
/pipes/{id}/pump`` with ``operation=``), and wait for a run to start or end. Each prints the pump."""

from __future__ import annotations

import argparse
import time
from typing import Any

from ._connection import Connection, path_id
from ._errors import ApiError, ClientError, UsageError
from ._legacy_node import Command, add_node_command, show

__all__ = ["add_commands", "wait_until_idle"]

POLL = 0.2  # seconds between looks at a pump
START_WAIT = 30.0  # seconds start-pump waits for the run to begin

OPERATIONS = (("stop-pump", "stop", "Stop the pipe's running pump"),
              ("disable-pump", "disable", "Disable the pipe's pump (no scheduled runs)"),
              ("enable-pump", "enable", "Enable the pipe's pump"))


def add_commands(commands: argparse._SubParsersAction) -> None:
    _pipe_command(commands, "get-pump", "Show the pipe's pump", lambda node, args: show(args, _pump(node, args)))
    for name, operation, text in OPERATIONS:
        _pipe_command(commands, name, text, _operation(operation))
    p = _pipe_command(commands, "start-pump", "Run the pipe's pump", _start)
    p.add_argument("--allow-already-running-pump", dest="allow_running", action="store_true",
                   help="do not treat a pump that is already running as an error")
    p.add_argument("--dont-wait-for-pump-to-start", dest="no_wait", action="store_true",
                   help="return at once, without waiting for the run to begin")
    p.add_argument("--wait-timeout", dest="wait_timeout", type=_seconds, default=0.0,
                   help="wait up to this many seconds for the run to end (default 0: do not wait)")
    p = _pipe_command(commands, "wait-for-pump-to-finish-running", "Wait until the pipe's pump is not running",
                      _wait)
    p.add_argument("timeout", type=_seconds, help="the most seconds to wait")
    _pipe_command(commands, "unset-last-seen", "Clear the pump's 'last seen' token",
                  _operation("update-last-seen", {"last-seen": ""}))
    p = _pipe_command(commands, "update-last-seen", "Set the pump's 'last seen' token", _update_last_seen)
    p.add_argument("last_seen", help="the new token, e.g. 2015-07-20T10:00:15Z")
    p = _pipe_command(commands, "run-pump-operation", "Run any operation the pump supports", _run_operation)
    p.add_argument("operation", help="the operation, e.g. start, stop, set-last-seen-to-end")
    p.add_argument("-d", dest="parameters", action="append", default=[], metavar="<parametername>=<parametervalue>",
                   help="a parameter of the operation; may be repeated, e.g. -d last-seen=2015-07-20T10:00:15Z")


def _pipe_command(commands: argparse._SubParsersAction, name: str, text: str,
                  run: Command) -> argparse.ArgumentParser:
    p = add_node_command(commands, name, text, run)
    p.add_argument("pipe_id", help="the pipe's id")
    return p


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return seconds


def _path(args: argparse.Namespace) -> str:
    return f"pipes/{path_id(args.pipe_id)}/pump"


def _pump(node: Connection, args: argparse.Namespace) -> dict[str, Any]:
    return node.get(_path(args))


def _runtime(pump: Any) -> dict[str, Any]:
    runtime = pump.get("runtime") if isinstance(pump, dict) else None
    return runtime if isinstance(runtime, dict) else {}


def _operate(node: Connection, args: argparse.Namespace, operation: str, parameters: dict[str, str]) -> Any:
    return node.json("POST", _path(args), data={"operation": operation, **parameters})


def _operation(operation: str, parameters: dict[str, str] | None = None) -> Command:
    def run(node: Connection, args: argparse.Namespace) -> None:
        _operate(node, args, operation, parameters or {})
        show(args, _pump(node, args))
    return run


def _update_last_seen(node: Connection, args: argparse.Namespace) -> None:
    _operation("update-last-seen", {"last-seen": args.last_seen})(node, args)


def _run_operation(node: Connection, args: argparse.Namespace) -> None:
    parameters = {}
    for pair in args.parameters:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"sesam run-pump-operation: -d takes <parametername>=<parametervalue>, not {pair!r}")
        parameters[name] = value.strip('"')
    _operation(args.operation, parameters)(node, args)


def _start(node: Connection, args: argparse.Namespace) -> None:
    before = _runtime(_pump(node, args)).get("last-started")
    try:
        _operate(node, args, "start", {})
    except ApiError as exc:
        if exc.status != 409 or not args.allow_running:
            raise
    if not args.no_wait:
        _wait_for(node, args, START_WAIT, "start",
                  lambda r: r.get("is-running") or r.get("last-started") != before or args.allow_running)
    if args.wait_timeout:
        wait_until_idle(node, args, args.wait_timeout)
    show(args, _pump(node, args))


def _wait(node: Connection, args: argparse.Namespace) -> None:
    wait_until_idle(node, args, args.timeout)
    show(args, _pump(node, args))


def wait_until_idle(node: Connection, args: argparse.Namespace, timeout: float) -> None:
    """Poll the pump until it is not running; a :class:`ClientError` after ``timeout`` seconds."""
    _wait_for(node, args, timeout, "finish running", lambda runtime: not runtime.get("is-running"))


def _wait_for(node: Connection, args: argparse.Namespace, timeout: float, what: str, done: Any) -> None:
    deadline = time.monotonic() + timeout
    while not done(_runtime(_pump(node, args))):
        if time.monotonic() >= deadline:
            raise ClientError(f"the pump of the pipe '{args.pipe_id}' did not {what} within {timeout:g} seconds")
        time.sleep(POLL)
