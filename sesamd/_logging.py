"""Structured log lines on stdout (for journald), and logger levels changed while the node runs.

:func:`configure` installs one handler on the root logger writing to stdout: logfmt lines by default
(``ts=2024-01-31T12:00:00.123Z level=info logger=actors.pump msg="pump orders: offset 3 -> 9" pipe=orders
run=2024-01-31T11:59:58.000001Z``), or one JSON object per line (``fmt="json"``). Each record carries:

- ``pipe``: the pipe the record is about (an ``extra={"pipe": ...}``, else the first argument of a message
  starting ``pump %s`` / ``pipe %s``, as the pump's and the node's do: the same rule as the event feed's);
- ``run``: that pipe's run in progress, or its latest one: the ``run`` of its last ``pump-started`` event.
  Every pump event of a run (``pump-started``, ``pump-progress``, ``pump-completed``, ``pump-failed``)
  carries that ``run``: the run's ``start_time``, distinct for each run of a pipe, and the ``start_time`` of
  its ``pump-started`` entity in the execution log. :func:`track_runs` feeds it from a node's event bus;
- any other ``extra=`` fields, and ``exc`` with the traceback of a record that carries an exception.

The feed's :class:`~sesamd._feed.FeedLogHandler` sits beside this handler on the root logger, so the same
records still become ``log`` events of the feed. :func:`levels` and :func:`set_levels` read and change the
levels of the loggers that exist (``GET``/``PUT /api/logging``). :func:`configure_file` also writes the same lines
to a rotating ``node.log`` in a log directory (``sesamd serve``'s ``log_dir``), which ``GET /api/logs`` lists.
"""

from __future__ import annotations

import difflib
import logging
import logging.handlers
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from ._feed import _record_pipe

__all__ = ["FORMATS", "LEVELS", "JsonFormatter", "LogfmtFormatter", "LoggingError", "RunIds", "StdoutHandler",
           "configure", "configure_file", "levels", "log_directory", "runs", "set_levels", "stop_file",
           "track_runs"]

FORMATS = ("logfmt", "json")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
          "critical": logging.CRITICAL}
ROOT = "root"
HANDLER_NAME = "sesamd.stdout"  # the handler configure installs (and replaces when called again)
FILE_HANDLER_NAME = "sesamd.file"  # the handler configure_file installs
LOG_FILE = "node.log"  # the current log file in the log directory (rotated ones: node.log.1, node.log.2, ...)

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class LoggingError(ValueError):
    """A bad format, logger or level: ``field`` names it (the API answers 400 with the message)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class RunIds:
    """The run id of each pipe's run in progress or latest run, from the pump events of an event bus."""

    def __init__(self) -> None:
        self._runs: dict[str, str] = {}

    def observe(self, event: Mapping[str, Any]) -> None:
        """An event bus listener: a ``pump-started`` event sets its pipe's run (the event's ``run``)."""
        if event.get("type") != "pump-started":
            return
        pipe, run = event.get("pipe"), event.get("run")
        if isinstance(pipe, str) and isinstance(run, str):
            self._runs[pipe] = run

    def get(self, pipe: str) -> str | None:
        return self._runs.get(pipe)


runs = RunIds()  # the process's (the formatters read it; one node per process in production)


def track_runs(bus: Any) -> Callable[[], None]:
    """Feed :data:`runs` from ``bus`` (an :class:`~actors.EventBus`); returns the function that stops it."""
    remove: Callable[[], None] = bus.add_listener(runs.observe)
    return remove


def _iso(created: float) -> str:
    moment = datetime.fromtimestamp(created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def fields_of(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, Any]:
    """What a line says: ts, level, logger, msg, then pipe and run, extras and the exception."""
    try:
        message = record.getMessage()
    except Exception:  # a record whose arguments do not fit its message still logs something
        message = f"{record.msg} {record.args!r}"
    fields: dict[str, Any] = {"ts": _iso(record.created), "level": record.levelname.lower(),
                              "logger": record.name, "msg": message}
    pipe = _record_pipe(record)
    if pipe is not None:
        fields["pipe"] = pipe
        run = runs.get(pipe)
        if run is not None:
            fields["run"] = run
    for key, value in vars(record).items():
        if key not in _STANDARD and key not in fields:
            fields[key] = value
    if record.exc_info and record.exc_info[0] is not None:
        fields["exc"] = formatter.formatException(record.exc_info)
    elif record.stack_info:
        fields["stack"] = record.stack_info
    return fields


def _logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else "null" if value is None else str(value)
    if text and not any(c in text for c in ' ="\\') and text.isprintable():
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    escaped = escaped.replace("\t", "\\t")
    return f'"{escaped}"'


def _key(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "_.-" else "_" for c in name)
    return cleaned or "_"


class LogfmtFormatter(logging.Formatter):
    """``key=value`` pairs, values quoted (``\\"``, ``\\\\``, ``\\n`` escaped) when they hold a space, ``=``,
    a quote or anything not printable; one line per record."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{_key(k)}={_logfmt_value(v)}" for k, v in fields_of(record, self).items())


def _json_default(value: Any) -> str:
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record (values JSON has no form for become their ``str``)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = fields_of(record, self)
        try:
            return orjson.dumps(fields, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # e.g. an integer beyond 64 bits in an extra
            return orjson.dumps({k: v if isinstance(v, str) else str(v) for k, v in fields.items()}).decode()


class StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler on whatever ``sys.stdout`` is when a record is written (a stdout replaced later, as
    by a test's capture, is followed rather than written to after it closed)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return sys.stdout

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass


def _level(name: Any, field: str) -> int:
    if isinstance(name, str) and name.strip().lower() in LEVELS:
        return LEVELS[name.strip().lower()]
    raise LoggingError(field, f"unknown level {name!r} (known: {', '.join(LEVELS)})")


def configure(fmt: str = "logfmt", level: str = "info", *, stream: IO[str] | None = None) -> None:
    """Log records at ``level`` and above as ``fmt`` lines (``logfmt`` or ``json``) to ``stream`` (default:
    stdout, through :class:`StdoutHandler`); replaces the handler an earlier call installed. Raises
    :class:`LoggingError` for a bad format or level."""
    if fmt not in FORMATS:
        raise LoggingError("log format", f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    root_level = _level(level, "log level")
    handler = logging.StreamHandler(stream) if stream is not None else StdoutHandler()
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(root_level)


def configure_file(directory: str | Path, fmt: str = "logfmt", *, max_bytes: int = 10 << 20,
                   backups: int = 5) -> Path:
    """Also write the records, as ``fmt`` lines, to ``directory``/:data:`LOG_FILE` (the directory is made if
    missing), rotated at ``max_bytes`` keeping ``backups`` older files; replaces the file handler an earlier
    call installed. Returns the directory. Raises :class:`LoggingError` for a bad format or a directory where
    no log file can be written."""
    if fmt not in FORMATS:
        raise LoggingError("log format", f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    if max_bytes < 1 or backups < 1:
        raise LoggingError("log file", f"needs a size and a count of 1 or more, not {max_bytes} and {backups}")
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(path / LOG_FILE, maxBytes=max_bytes, backupCount=backups,
                                                       encoding="utf-8")
    except OSError as exc:
        raise LoggingError("log directory", f"cannot write {path / LOG_FILE}: {exc.strerror or exc}") from None
    handler.set_name(FILE_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    stop_file()
    logging.getLogger().addHandler(handler)
    return path


def stop_file() -> None:
    """Remove (and close) the file handler :func:`configure_file` installed, if any."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == FILE_HANDLER_NAME]:
        root.removeHandler(old)
        old.close()


def log_directory() -> Path | None:
    """The directory the installed file handler writes to (None: no log files)."""
    for handler in logging.getLogger().handlers:
        if handler.get_name() == FILE_HANDLER_NAME and isinstance(handler, logging.FileHandler):
            return Path(handler.baseFilename).parent
    return None


def _name_of(level: int) -> str:
    return logging.getLevelName(level).lower()


def levels() -> dict[str, str]:
    """The root logger's level and that of every logger with a level of its own (name -> level name)."""
    found = {ROOT: _name_of(logging.getLogger().level)}
    for name, logger in sorted(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            found[name] = _name_of(logger.level)
    return found


def _known(name: str) -> bool:
    return name == ROOT or name in logging.Logger.manager.loggerDict


def set_levels(changes: Any) -> dict[str, str]:
    """Set the levels of existing loggers from ``{"actors.pump": "debug", ...}`` (``null`` or ``"notset"``:
    inherit the parent's again; the root logger as ``root``); all or nothing. Returns :func:`levels`.
    Raises :class:`LoggingError` naming the first bad logger or level."""
    if not isinstance(changes, Mapping) or not changes:
        raise LoggingError("body", "must be a JSON object of logger name -> level, such as "
                                   '{"actors.pump": "debug"}')
    chosen: dict[str, int] = {}
    for name, wanted in changes.items():
        if not isinstance(name, str) or not _known(name):
            close = difflib.get_close_matches(str(name), [ROOT, *logging.Logger.manager.loggerDict], n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise LoggingError(str(name), f"no such logger{hint}")
        if wanted is None or (isinstance(wanted, str) and wanted.strip().lower() == "notset"):
            if name == ROOT:
                raise LoggingError(name, "the root logger needs a level (it has no parent to inherit from)")
            chosen[name] = logging.NOTSET
        else:
            chosen[name] = _level(wanted, name)
    for name, level in chosen.items():
        logging.getLogger(None if name == ROOT else name).setLevel(level)
    return levels()
