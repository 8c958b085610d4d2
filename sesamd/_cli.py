"""The ``sesamd`` command line: ``sesamd serve``, ``sesamd dataset import|export|list|check``, ``sesamd token``
and ``sesamd user add|list|remove``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import storage

from . import _auth_cli, _backup, _dataset_cli, _lint, _serve, _settings, _top

__all__ = ["main"]


class CommandError(Exception):
    """A user error: printed as ``sesamd: error: ...``, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sesamd", description="A self-hosted Sesam-compatible node.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _serve.add_command(commands)
    _dataset_cli.add_commands(commands)
    _auth_cli.add_commands(commands)
    _backup.add_commands(commands)
    _lint.add_command(commands)
    _settings.add_command(commands)
    _top.add_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (_dataset_cli.CLIError, _auth_cli.CLIError, _backup.BackupError, _lint.LintError,
            _settings.SettingsError, _top.TopError, storage.StorageError) as exc:
        print(f"sesamd: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
