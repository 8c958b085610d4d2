"""Structured log lines on stdout (for journald), and logger levels changed while the node runs.

:func:`configure` installs one handler on the root logger writing to stdout: logfmt lines by default
(``ts=2024-01-31T12:00:00.123Z level=info logger=actors.pump msg="pump orders: offset 3 -> 9" pipe=orders
run=2024-01-31T11:59:58.000001Z``), or one JSON object per line (``fmt="json"``). Each record carries:

- ``pipe``: the pipe the record is about (an ``extra={"pipe": ...}``, else the first argument of a message
  starting ``pump %s`` / ``pipe %s``, as the pump's and the node's do: the same rule as the event feed's);
- ``run``: that pipe's run in progress, or its latest one: the ``start_time`` of its last ``pump-started``
  event (a ``run`` field of the event when it has one), which is also the ``start_time`` of the run's
  ``pump-started`` entity in the execution log. :func:`track_runs` feeds it from a node's event bus;
- any other ``extra=`` fields, and ``exc`` with the traceback of a record that carries an exception.

The feed's :class:`~sesamd._feed.FeedLogHandler` sits beside this handler on the root logger, so the same
records still become ``log`` events of the feed. :func:`levels` and :func:`set_levels` read and change the
levels of the loggers that exist (``GET``/``PUT /api/logging``).
"""

from __future__ import annotations

import difflib
import logging
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from ._feed import _record_pipe

__all__ = ["FORMATS", "LEVELS", "JsonFormatter", "LogfmtFormatter", "LoggingError", "RunIds", "StdoutHandler",
           "configure", "levels", "runs", "set_levels", "track_runs"]

FORMATS = ("logfmt", "json")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
          "critical": logging.CRITICAL}
ROOT = "root"
HANDLER_NAME = "sesamd.stdout"  # the handler configure installs (and replaces when called again)

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
        """An event bus listener: a ``pump-started`` event sets its pipe's run."""
        if event.get("type") != "pump-started":
            return
        pipe, run = event.get("pipe"), event.get("run", event.get("start_time"))
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
