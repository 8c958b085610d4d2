"""The node's settings: every ``sesamd serve`` option, from flags, ``SESAMD_*`` variables, a TOML file or defaults.

Precedence: a command-line flag wins, then the environment variable (``SESAMD_`` + the name in capitals:
``SESAMD_DATA_DIR``, ``SESAMD_PORT``, ...), then the settings file, then the default. The file is
``--settings FILE``, else ``$SESAMD_SETTINGS``, else ``/etc/sesamd/sesamd.toml`` when it exists; it holds
flat ``name = value`` pairs with the names of :data:`SETTINGS` (``data_dir = "/var/lib/sesamd/data"``).

Values are checked where they come from: an unknown key or a value of the wrong type in the file, or a bad
value in a variable, is a one-line :class:`SettingsError` naming the file and key (``FILE: port: ...``) or
the variable (``SESAMD_PORT: ...``); a bad flag is argparse's usage error. ``SESAMD_*`` variables that are
no setting are left alone (tools and tests use the prefix too) and ``sesamd settings`` lists them.

``sesamd settings [--settings FILE] [flags] [--json]`` prints each effective value and where it came from.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import storage

from ._command_errors import CommandError

__all__ = ["DEFAULT_FILE", "ENV_FILE", "SETTINGS", "Effective", "Setting", "SettingsError", "add_arguments",
           "add_command", "flag_values", "log_directory", "resolve"]

DEFAULT_FILE = Path("/etc/sesamd/sesamd.toml")
ENV_FILE = "SESAMD_SETTINGS"
PREFIX = "SESAMD_"


class SettingsError(CommandError):
    """A bad settings file, variable or value: one line, naming where."""


# -- value kinds: ``parse`` reads text (variables, flags), ``check`` a TOML value; both raise ValueError --------


@dataclass(frozen=True)
class Kind:
    describe: str  # "an integer from 0 to 65535"
    parse: Callable[[str], Any]
    check: Callable[[Any], Any]


def _bad(kind: str, value: Any) -> ValueError:
    return ValueError(f"must be {kind}, not {value!r}")


def text_kind(optional: bool = False) -> Kind:
    describe = "a string"

    def parse(text: str) -> Any:
        if not text and not optional:
            raise _bad("a non-empty string", text)
        return text or None

    def check(value: Any) -> Any:
        if not isinstance(value, str):
            raise _bad(describe, value)
        return parse(value)

    return Kind(describe, parse, check)


def integer_kind(low: int, high: int, describe: str | None = None) -> Kind:
    describe = describe or f"an integer from {low} to {high}"

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _bad(describe, value)
        return value

    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise _bad(describe, text) from None
        if not low <= value <= high:
            raise _bad(describe, text)
        return value

    return Kind(describe, parse, check)


def seconds_kind(low: float = 0.0) -> Kind:
    describe = f"a number of seconds above {low:g}" if low else "a number of seconds, 0 or more"

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
                value > low if low else value >= 0):
            raise _bad(describe, value)
        return float(value)

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise _bad(describe, text) from None
        if value != value or value in (float("inf"), float("-inf")):  # NaN, infinity
            raise _bad(describe, text)
        try:
            return check(value)
        except ValueError:
            raise _bad(describe, text) from None

    return Kind(describe, parse, check)


def choice_kind(*choices: str) -> Kind:
    describe = "one of " + ", ".join(choices)

    def check(value: Any) -> str:
        if value not in choices:
            raise _bad(describe, value)
        return str(value)

    def parse(text: str) -> str:
        return check(text.strip().lower())

    return Kind(describe, parse, check)


OFF = "off"  # the log_dir that turns file logging off


def directory_or_off_kind() -> Kind:
    describe = f"a directory, or \"\" or {OFF!r} for none"

    def parse(text: str) -> str:
        return OFF if text.strip().lower() in ("", OFF) else text

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise _bad(describe, value)
        return parse(value)

    return Kind(describe, parse, check)


MAX_WRITE_BUFFER_MB = 1024  # LevelDB clips larger write buffers
MAX_CACHE_MB = 65536


def _megabytes(maximum: int) -> Kind:
    return integer_kind(1, maximum, f"a whole number of MiB from 1 to {maximum}")


@dataclass(frozen=True)
class Setting:
    """One setting: its name (the file's key; the flag and variable derive from it), kind, default, help."""

    name: str
    kind: Kind
    default: Any
    help: str
    metavar: str | None = None
    hidden: bool = False  # not in --help (tests and tuning)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return PREFIX + self.name.upper()


_NODE = storage.LevelDBOptions.NODE

SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", text_kind(), "data", "the node's data directory (default: ./data)", "DIR"),
    Setting("host", text_kind(), "127.0.0.1", "address to listen on (default: 127.0.0.1)"),
    Setting("port", integer_kind(0, 65535), 9042, "port (default: 9042; 0 = any free)"),
    Setting("config", text_kind(optional=True), None,
            "a JSON array of config entities to load at start and re-apply when the file changes or on SIGHUP",
            "FILE"),
    Setting("poll_interval", seconds_kind(0.0), 1.0, "seconds between checks of the config file", hidden=True),
    Setting("grace", seconds_kind(), 30.0,
            "seconds running batches get to commit at shutdown, the drain timeout (default: 30)", "SECONDS"),
    Setting("dataset_write_buffer_mb", _megabytes(MAX_WRITE_BUFFER_MB), _NODE.write_buffer_size >> 20,
            f"LevelDB write buffer of each open dataset in MiB, 1-{MAX_WRITE_BUFFER_MB}; up to two per dataset are "
            f"in memory (default: {_NODE.write_buffer_size >> 20})", "N"),
    Setting("dataset_cache_mb", _megabytes(MAX_CACHE_MB), _NODE.lru_cache_size >> 20,
            f"LevelDB block cache of each open dataset in MiB, 1-{MAX_CACHE_MB} "
            f"(default: {_NODE.lru_cache_size >> 20})", "N"),
    Setting("log_format", choice_kind("logfmt", "json"), "logfmt", "log lines on stdout: logfmt or json "
            "(default: logfmt)", "FORMAT"),
    Setting("log_level", choice_kind("debug", "info", "warning", "error"), "info",
            "the root log level: debug, info, warning or error (default: info)", "LEVEL"),
    Setting("log_dir", directory_or_off_kind(), None,
            "where the log files GET /api/logs lists are written, as the log lines on stdout; \"\" or off: none "
            "(default: DATA_DIR/logs)", "DIR"),
    Setting("log_file_mb", integer_kind(1, 4096), 10,
            "the size in MiB at which the log file is rotated, 1-4096 (default: 10)", "N"),
    Setting("log_file_count", integer_kind(1, 1000), 5,
            "how many rotated log files are kept, 1-1000 (default: 5)", "N"),
)
BY_NAME = {s.name: s for s in SETTINGS}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--settings FILE`` and one flag per setting (default None: not given)."""
    parser.add_argument("--settings", default=None, metavar="FILE",
                        help=f"a TOML settings file (default: ${ENV_FILE}, else {DEFAULT_FILE} if present)")
    for setting in SETTINGS:
        parser.add_argument(setting.flag, dest=setting.name, type=_argparse_type(setting), default=None,
                            metavar=setting.metavar,
                            help=argparse.SUPPRESS if setting.hidden else f"{setting.help} [{setting.env}]")


def _argparse_type(setting: Setting) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return setting.kind.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = setting.name  # argparse names the type in some messages
    return parse


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags."""
    return {s.name: getattr(args, s.name) for s in SETTINGS if getattr(args, s.name, None) is not None}


@dataclass(frozen=True)
class Effective:
    """The effective settings: ``values[name]``, and ``sources[name]`` = ``(kind, where)`` with kind one of
    ``default``, ``file``, ``env``, ``flag`` and where the file path, variable or flag (``""`` for a default)."""

    values: dict[str, Any]
    sources: dict[str, tuple[str, str]]
    file: Path | None
    ignored_env: tuple[str, ...] = ()

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


def settings_file(given: str | None, environ: Mapping[str, str]) -> Path | None:
    """The settings file to read: ``--settings``, else ``$SESAMD_SETTINGS``, else the default when present."""
    if given:
        return Path(given)
    if environ.get(ENV_FILE):
        return Path(environ[ENV_FILE])
    return DEFAULT_FILE if DEFAULT_FILE.is_file() else None


def read_file(path: Path) -> dict[str, Any]:
    """The checked values of a settings file."""
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise SettingsError(f"cannot read the settings file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    values = {}
    for key, value in data.items():
        setting = BY_NAME.get(key)
        if setting is None:
            raise SettingsError(f"{path}: {key}: unknown setting (known: {', '.join(BY_NAME)})")
        try:
            values[key] = setting.kind.check(value)
        except ValueError as exc:
            raise SettingsError(f"{path}: {key}: {exc}") from None
    return values


def resolve(flags: Mapping[str, Any] | None = None, *, settings: str | None = None,
            environ: Mapping[str, str] | None = None) -> Effective:
    """Flags over variables over the file over defaults (see the module docstring)."""
    environ = os.environ if environ is None else environ
    flags = flags or {}
    path = settings_file(settings, environ)
    from_file = read_file(path) if path is not None else {}
    values: dict[str, Any] = {}
    sources: dict[str, tuple[str, str]] = {}
    for setting in SETTINGS:
        if setting.name in flags:
            values[setting.name], sources[setting.name] = flags[setting.name], ("flag", setting.flag)
        elif setting.env in environ:
            try:
                values[setting.name] = setting.kind.parse(environ[setting.env])
            except ValueError as exc:
                raise SettingsError(f"{setting.env}: {exc}") from None
            sources[setting.name] = ("env", setting.env)
        elif setting.name in from_file:
            values[setting.name], sources[setting.name] = from_file[setting.name], ("file", str(path))
        else:
            values[setting.name], sources[setting.name] = setting.default, ("default", "")
    known = {s.env for s in SETTINGS} | {ENV_FILE}
    ignored = tuple(sorted(name for name in environ if name.startswith(PREFIX) and name not in known))
    return Effective(values, sources, path, ignored)


def log_directory(effective: Effective) -> Path | None:
    """Where the log files go: ``log_dir``, by default ``<data_dir>/logs``; None when it is off."""
    chosen = effective["log_dir"]
    if chosen == OFF:
        return None
    return Path(effective["data_dir"]) / "logs" if chosen is None else Path(chosen)


# -- sesamd settings --------------------------------------------------------------------------------------------


def add_command(commands: Any) -> None:
    p = commands.add_parser("settings", help="print the effective settings of `sesamd serve` and their sources")
    add_arguments(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_cmd_settings)


def _cmd_settings(args: argparse.Namespace) -> int:
    effective = resolve(flag_values(args), settings=args.settings)
    values = dict(effective.values)
    if values["log_dir"] is None:  # shown as the directory its default is
        values["log_dir"] = str(log_directory(effective))
    if args.json:
        print(json.dumps({
            "file": str(effective.file) if effective.file is not None else None,
            "settings": {name: {"value": value, "source": effective.sources[name][0],
                                "from": effective.sources[name][1] or None}
                         for name, value in values.items()},
            "ignored_env": list(effective.ignored_env),
        }, indent=2))
        return 0
    rows = [(name, "-" if value is None else str(value),
             " ".join(part for part in effective.sources[name] if part))
            for name, value in values.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for name, value, source in rows:
        print(f"{name:<{widths[0]}}  {value:<{widths[1]}}  {source}")
    file_line = str(effective.file) if effective.file is not None else f"none ({DEFAULT_FILE} is absent)"
    print(f"# settings file: {file_line}", file=sys.stderr)
    for name in effective.ignored_env:
        print(f"# ignored: {name} is not a setting", file=sys.stderr)
    return 0
