"""The ``sesamd`` command line: ``serve``, ``settings``, ``dataset import|export|list|check``, ``token``,
``user add|list|remove``, ``backup``, ``restore``, ``lint`` and ``top``.

Only the module of the subcommand given is imported (the full parser, with every module, is built for
``--help`` and unknown commands): ``sesamd dataset import`` then starts in about 60 ms instead of 250 ms
with the server, the client and rich loaded, which is 10-15 % of a 100k-entity import.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

import storage

from ._command_errors import CommandError

__all__ = ["CommandError", "build_parser", "main"]

# subcommand -> (module, the function that adds its parsers to the subparsers)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("_serve", "add_command"),
    "settings": ("_settings", "add_command"),
    "dataset": ("_dataset_cli", "add_commands"),
    "token": ("_auth_cli", "add_commands"),
    "user": ("_auth_cli", "add_commands"),
    "backup": ("_backup", "add_commands"),
    "restore": ("_backup", "add_commands"),
    "lint": ("_lint", "add_command"),
    "top": ("_top", "add_command"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with ``command``'s module registered, or every module's when ``command`` is None."""
    parser = argparse.ArgumentParser(prog="sesamd", description="A self-hosted Sesam-compatible node.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = [COMMANDS[command]] if command in COMMANDS else list(COMMANDS.values())
    for module, function in dict.fromkeys(wanted):
        register = getattr(importlib.import_module(f"sesamd.{module}"), function)
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (CommandError, storage.StorageError) as exc:
        print(f"sesamd: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
