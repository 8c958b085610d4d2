"""``GET /logs``, ``GET /logs/{log_id}``, ``POST /logs``: the node's log files, and its log level changed.

The log files are those of the directory the daemon's file handler writes to (``log_dir``, see
:func:`sesamd._logging.configure_file`): ``node.log`` and its rotated ``node.log.1``, ... A log's id is its
file name as the listing gives it; ``GET /logs/{log_id}`` serves only an id of the listing made for that
request, so nothing of the request path reaches the file system. No file handler (``log_dir = "off"``, or an
app not run by ``sesamd serve``): no log files.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import trio
from quart import Response

from .. import _logging
from .._auth import Permission
from ._context import api
from ._errors import ApiError
from ._logging import change_levels
from ._params import form_and_query
from ._routes import Resource
from ._views import json_response

__all__ = ["LogFile", "log_files", "resource"]

resource = Resource("logs")

CHUNK = 64 << 10  # bytes read per worker-thread call while streaming a file


@dataclass(frozen=True)
class LogFile:
    """One file of the log directory."""

    name: str
    path: Path
    size: int
    modified: float  # seconds since the epoch

    def json(self) -> dict[str, object]:
        """The listing's entry: ``_id`` (what ``sesamclient`` reads as the log's id), name, size, modified."""
        moment = datetime.fromtimestamp(self.modified, UTC)
        return {"_id": self.name, "id": self.name, "type": "log", "name": self.name, "size": self.size,
                "modified": moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"}


def log_files(directory: Path | None) -> dict[str, LogFile]:
    """The regular files of ``directory`` (symbolic links, subdirectories and hidden files left out), newest
    first; none when ``directory`` is None or missing."""
    if directory is None:
        return {}
    found = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.name.isprintable():
                    continue
                if entry.is_file(follow_symlinks=False):
                    stat = entry.stat(follow_symlinks=False)
                    found.append(LogFile(entry.name, Path(entry.path), stat.st_size, stat.st_mtime))
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ApiError(503, f"cannot list the log directory {directory}: {exc.strerror or exc}") from None
    found.sort(key=lambda f: (-f.modified, f.name))
    return {f.name: f for f in found}


async def _listing() -> dict[str, LogFile]:
    return await trio.to_thread.run_sync(log_files, _logging.log_directory(), limiter=api().read_limiter)


@resource.route("/logs", permission=Permission.ADMIN,
                summary="The node's log files (node.log and its rotated files): id, name, size, modified time")
async def get_logs() -> Response:
    return json_response([f.json() for f in (await _listing()).values()])


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)


def _open(log: LogFile) -> tuple[BinaryIO, int]:
    """The file opened for reading (never through a symbolic link) and its size now."""
    handle = open(log.path, "rb", buffering=0, opener=_no_follow)  # noqa: SIM115 (closed by _content)
    return handle, os.fstat(handle.fileno()).st_size


async def _content(handle: BinaryIO, size: int, limiter: trio.CapacityLimiter) -> AsyncIterator[bytes]:
    """The file's first ``size`` bytes (what it held when opened: a live log keeps growing), in chunks."""
    try:
        left = size
        while left > 0:
            chunk = await trio.to_thread.run_sync(handle.read, min(CHUNK, left), limiter=limiter)
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
    finally:
        handle.close()


@resource.route("/logs/<path:log_id>", permission=Permission.ADMIN, produces="text/plain",
                summary="One log file's content (streamed, as it was when the request came); the id is from GET /logs")
async def get_log(log_id: str) -> Response:
    files = await _listing()
    log = files.get(log_id)
    if log is None:
        known = ", ".join(files) or "none"
        raise ApiError(404, f"no log file {log_id!r} (known: {known})", log_id=log_id)
    context = api()
    try:
        handle, size = await trio.to_thread.run_sync(_open, log, limiter=context.read_limiter)
    except FileNotFoundError:  # rotated away since the listing
        raise ApiError(404, f"no log file {log_id!r} (it went away while being opened)", log_id=log_id) from None
    except OSError as exc:
        raise ApiError(503, f"cannot read the log file {log_id!r}: {exc.strerror or exc}") from None
    return Response(_content(handle, size, context.read_limiter), content_type="text/plain; charset=utf-8")


@resource.route("/logs", "POST", permission=Permission.ADMIN, body="application/x-www-form-urlencoded",
                summary="Set a logger's level: form loglevel (debug, info, ...) and logger_name (default: root)")
async def post_logs() -> Response:
    form = await form_and_query()
    level = form.get("loglevel")
    if not level:
        raise ApiError(400, "POST /logs: the form field 'loglevel' is required (debug, info, warning, error or "
                            "critical)", field="loglevel")
    change_levels({form.get("logger_name") or _logging.ROOT: level}, "POST /logs")
    return json_response({"msg": "Log level updated"})
