"""The sesamclient CLI's per-user settings file and its ``config`` command (client-spec 6.14).

The file is where sesamclient keeps it, so both programs share one login: an INI file ``settings.ini`` in
the user data directory of the application "sesamclient" (``$XDG_DATA_HOME/sesamclient`` or
``~/.local/share/sesamclient`` on Linux). Every value lives in the ``[server]`` section: ``base_url``,
``username``, ``password`` and ``timeout`` are set with ``sesam config``; ``jwt`` is written by ``sesam login``
and removed by ``sesam logout``.
"""

from __future__ import annotations

import argparse
import configparser
import math
import os
import sys
from pathlib import Path

from ._errors import ProjectError, UsageError

__all__ = ["OPTIONS", "SECTION", "Settings", "add_commands", "settings_path", "timeout_value"]

SECTION = "server"
OPTIONS = ("server.base_url", "server.username", "server.password", "server.timeout")


def settings_path() -> Path:
    """Where sesamclient keeps its settings on this platform."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "Sesam"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        xdg = os.environ.get("XDG_DATA_HOME", "").strip()
        base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "sesamclient" / "settings.ini"


class Settings:
    """The values of the settings file (``server.<key>`` names); :meth:`save` writes them back."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or settings_path()
        self.parser = configparser.ConfigParser(interpolation=None)
        try:
            self.parser.read(self.path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise ProjectError(f"the settings file {self.path} cannot be read: {_first_line(exc)}") from None

    def get(self, name: str) -> str | None:
        section, key = name.split(".", 1)
        value = self.parser.get(section, key, fallback="")
        return value or None

    def set(self, name: str, value: str) -> None:
        section, key = name.split(".", 1)
        if not self.parser.has_section(section):
            self.parser.add_section(section)
        self.parser.set(section, key, value)

    def remove(self, name: str) -> bool:
        """Forget ``name``; whether it was set."""
        section, key = name.split(".", 1)
        return self.parser.has_section(section) and self.parser.remove_option(section, key)

    def save(self) -> None:
        """Write the file, readable by the user only (it may hold a password and a token)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(descriptor, "w", encoding="utf-8") as file:
                self.parser.write(file)
        except OSError as exc:
            raise ProjectError(f"cannot write the settings file {self.path}: {exc.strerror or exc}") from None


def timeout_value(text: str, where: str) -> float:
    """``text`` as a timeout in seconds (a positive number), or a :class:`UsageError` naming ``where``."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise UsageError(f"{where} must be a positive number of seconds, not {text!r}")
    return seconds


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("config", help="Show or set a stored setting",
                            description="Show a stored setting, or store a new value for it (in "
                                        f"{settings_path()}).")
    p.add_argument("optionname", choices=OPTIONS, help="the setting")
    p.add_argument("optionvalue", nargs="?", help="the new value; without it the stored value is shown")
    p.set_defaults(run=_cmd_config)


def _cmd_config(args: argparse.Namespace) -> int:
    settings = Settings()
    if args.optionvalue is None:
        value = settings.get(args.optionname)
        if value is not None:
            print(value)
        return 0
    if args.optionname == "server.timeout":
        timeout_value(args.optionvalue, "server.timeout")
    settings.set(args.optionname, args.optionvalue)
    settings.save()
    return 0


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
