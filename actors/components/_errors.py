"""Errors of the components package: one base, split into transient and terminal (after dlt).

A :class:`TransientError` may go away when the same thing is tried again (a refused connection, a timeout,
a 5xx or 429 answer); a :class:`TerminalError` will not (a 4xx answer, a body that is not JSON, an entity
without ``_id``). Retry loops retry only transient errors; either kind fails the run with its message.
"""

from __future__ import annotations

__all__ = ["ComponentError", "TerminalError", "TransientError"]


class ComponentError(Exception):
    """A source, transform or sink could not do its work; ``transient`` says whether a retry may help."""

    transient = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status  # the HTTP status that caused it, if any


class TransientError(ComponentError):
    """Trying again later may succeed."""

    transient = True


class TerminalError(ComponentError):
    """Trying again gives the same failure."""
