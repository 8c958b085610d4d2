"""The base of the ``sesamd`` subcommands' user errors, so the command line can catch them all without
importing every subcommand's module."""

from __future__ import annotations

__all__ = ["CommandError"]


class CommandError(Exception):
    """A user error of a subcommand: printed as ``sesamd: error: ...``, exit code 2."""
