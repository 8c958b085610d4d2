"""``wipe``, ``restart`` and ``reset`` (client-spec 6.11, 6.12): emptying or restarting the node."""

from __future__ import annotations

import time
from typing import Any

from .._classify import is_user_pipe
from .._errors import ClientError
from .._output import log, spinner
from .._project import METADATA
from ._context import Context, wait_until
from .run import stop

__all__ = ["reset", "restart", "wipe"]

WIPE_TIMEOUT = 30 * 60
WIPE_POLL = 5.0
RESTART_POLL = 3.0


def _wipe_metadata(context: Context) -> dict[str, Any]:
    """The local metadata (or a bare one) with signalling, C++ extensions and user pipe scheduling off."""
    metadata = context.project.local_metadata() if (context.project.root / METADATA).is_file() else {}
    metadata = metadata or {"_id": "node", "type": "metadata"}
    defaults = metadata.setdefault("global_defaults", {})
    defaults.update(use_signalling_internally=False, use_signalling_externally=False, enable_cpp_extensions=False)
    metadata.setdefault("task_manager", {})["disable_user_pipes"] = True
    return metadata


def wipe(context: Context) -> None:
    """Remove every pipe, system and env var, and the datasets the config leaves behind."""
    node = context.node
    stop(context)
    log.info("Wiping node...")
    try:
        node.put_config([_wipe_metadata(context)], force=True)
        node.put_config([], force=True)
    except ClientError as exc:
        raise ClientError(f"Failed to wipe config: {exc.message}") from None
    log.info("Removed pipes and systems")
    try:
        node.put_env({})
    except ClientError as exc:
        raise ClientError(f"Failed to wipe environment variables: {exc.message}") from None
    log.info("Removed environment variables")
    with spinner("Waiting for the pipes to be removed"):
        wait_until(lambda: not [p for p in node.pipes() if is_user_pipe(p)], timeout=WIPE_TIMEOUT,
                   interval=WIPE_POLL, what="Waiting for pipes to be removed")
    removed = 0
    for dataset in node.datasets():
        dataset_id = dataset.get("_id")
        if isinstance(dataset_id, str) and not dataset_id.startswith("system:"):
            node.delete_dataset(dataset_id)
            removed += 1
    log.debug("Removed %d datasets", removed)
    log.info("Successfully wiped node!")


def _restart(context: Context, operation: str, doing: str, done: str) -> None:
    node = context.node
    stop(context, fail=False)
    log.info("%s target node...", doing)
    before = node.status().get("node_start_time")
    answer = node.admin(operation)
    if answer != {"message": "OK"}:
        log.debug("POST /admin %s answered %r", operation, answer)
        raise ClientError(f"Failed to {operation} target node! The node answered {answer!r}, not "
                          '{"message": "OK"}')
    timeout = context.args.restart_timeout
    last = "no new node_start_time"

    def restarted() -> bool:
        nonlocal last
        try:
            if node.status().get("node_start_time") != before:
                return True
        except ClientError as exc:
            last = exc.message
        return False

    started = time.monotonic()
    with spinner(f"Waiting for the node to {operation}"):
        try:
            wait_until(restarted, timeout=timeout, interval=RESTART_POLL, what="Waiting for the node")
        except ClientError:
            raise ClientError(f"Failed to {operation} target node! It did not come back within {timeout} "
                              f"seconds; the last error was: {last}") from None
    log.debug("The node was back after %.1f seconds", time.monotonic() - started)
    log.info("Successfully %s target node!", done)


def restart(context: Context) -> None:
    """Restart the node and wait until it is back."""
    _restart(context, "restart", "Restarting", "restarted")


def reset(context: Context) -> None:
    """Wipe the node's database, restart it and wait until it is back."""
    _restart(context, "reset", "Resetting", "reset")
