"""The ``sesamd`` command line: ``sesamd serve``, ``sesamd dataset import|export|list|check``, ``sesamd token``
and ``sesamd user add|list|remove``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import _auth_cli, _dataset_cli, _serve

__all__ = ["main"]


class CommandError(Exception):
    """A user error: printed as ``sesamd: error: ...``, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sesamd", description="A self-hosted Sesam-compatible node.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _serve.add_command(commands)
    _dataset_cli.add_commands(commands)
    _auth_cli.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (_dataset_cli.CLIError, _auth_cli.CLIError) as exc:
        print(f"sesamd: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
