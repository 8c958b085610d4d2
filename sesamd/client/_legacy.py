"""The sesamclient package's command line (client-spec 6.14), which the Sesam getting-started guide uses:
``sesam config``, ``login``, ``import``, ``export`` and thin wrappers of the node's pipe, pump, system,
dataset, env-var and secret routes. :func:`main` runs one command; ``sesam`` hands it the command lines
whose first word is in :data:`LEGACY_COMMANDS` (none is a sesam-py command word).

Errors are one line on stderr: ``error: <message>``, exit 1; bad arguments exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from . import (
    _legacy_export,
    _legacy_import,
    _legacy_login,
    _legacy_objects,
    _legacy_pumps,
    _legacy_settings,
    _legacy_vars,
)
from ._errors import ClientError, UsageError

__all__ = ["LEGACY_COMMANDS", "main", "parser"]

LEGACY_COMMANDS: frozenset[str] = frozenset({
    "config", "login", "logout", "import", "export",
    "get-pipes", "get-pipe", "add-pipes", "modify-pipe", "delete-pipe",
    "get-systems", "get-system", "add-systems", "modify-system", "delete-system",
    "get-datasets", "get-dataset", "delete-dataset", "get-dataset-entities", "get-dataset-entity",
    "get-pump", "start-pump", "stop-pump", "enable-pump", "disable-pump", "wait-for-pump-to-finish-running",
    "unset-last-seen", "update-last-seen", "run-pump-operation",
    "get-env-vars", "put-env-vars", "post-env-vars", "delete-env-var",
    "get-secrets", "put-secrets", "post-secrets", "delete-secret",
})

MODULES = (_legacy_settings, _legacy_login, _legacy_import, _legacy_export, _legacy_objects, _legacy_pumps,
           _legacy_vars)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one-line :class:`UsageError`s."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} -h')")


def parser() -> argparse.ArgumentParser:
    """The parser of every legacy command."""
    top = _Parser(prog="sesam", description="Commands of the sesamclient command line: connect to a node, "
                                            "import and export its config, and work with its pipes, pumps, "
                                            "systems, datasets, env vars and secrets.")
    top.add_argument("--loglevel", choices=("ERROR", "WARNING", "INFO", "DEBUG"), default="WARNING",
                     help="accepted for compatibility; sesam reports only errors")
    commands = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in MODULES:
        module.add_commands(commands)
    return top


def main(argv: list[str]) -> int:
    """Run one legacy command line (``argv`` without the program name); its exit code."""
    try:
        try:
            args = parser().parse_args(argv)
        except SystemExit as exc:  # -h / --help
            return exc.code if isinstance(exc.code, int) else 0
        if args.command is None:
            raise UsageError("sesam: no command given (see 'sesam -h')")
        return args.run(args)
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (sesam get-pipes | head)
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        except (OSError, ValueError):
            pass
        return 1
