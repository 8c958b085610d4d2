"""The command line's output (client-spec 1.2): every message goes through the ``sesam`` logger to stderr, in
the ``-logformat`` chosen (``log``: time, name, level; ``azure``: Azure DevOps issue lines; else the bare
message). On a terminal, messages and progress go through one ``rich`` console, so a progress bar or
spinner and the log lines never overwrite each other; otherwise progress is logged as plain lines.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

__all__ = ["TRACE", "Counter", "log", "progress", "setup", "spinner", "teardown"]

TRACE = 5
logging.addLevelName(TRACE, "TRACE")
log = logging.getLogger("sesam")
STYLES = {logging.ERROR: "bold red", logging.CRITICAL: "bold red", logging.WARNING: "yellow"}
PLAIN_EVERY = 10.0  # seconds between plain progress lines

_console: Console | None = None


class _Handler(logging.Handler):
    """Writes each record to the stderr of the moment (a test's capture, rich's redirect) or the console."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if _console is not None:
                _console.print(text, style=STYLES.get(record.levelno), markup=False, highlight=False,
                               soft_wrap=True)
            else:
                stream: TextIO = sys.stderr
                stream.write(text + "\n")
                stream.flush()
        except Exception:
            self.handleError(record)


class _AzureFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"##vso[task.logissue type=error;]{message}"
        if record.levelno == logging.WARNING:
            return f"##vso[task.logissue type=warning;]{message}"
        if record.levelno <= logging.DEBUG:
            return f"##[debug]{message}"
        return message


def setup(verbosity: int = 0, logformat: str = "short", *, terminal: bool | None = None) -> None:
    """Send the ``sesam`` logger's records to stderr: INFO, DEBUG with ``verbosity`` 1, TRACE from 2; with 3
    also httpx's request lines. ``terminal`` (default: whether stderr is one) turns on rich output."""
    global _console
    teardown()
    terminal = sys.stderr.isatty() if terminal is None else terminal
    _console = Console(stderr=True) if terminal and logformat not in ("log", "azure") else None
    handler = _Handler()
    if logformat == "log":
        handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
    elif logformat == "azure":
        handler.setFormatter(_AzureFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO if verbosity <= 0 else logging.DEBUG if verbosity == 1 else TRACE)
    if verbosity >= 3:
        wire = logging.getLogger("httpx")
        wire.handlers[:] = [handler]
        wire.setLevel(logging.DEBUG)
        wire.propagate = False


def teardown() -> None:
    """Remove what :func:`setup` installed (for in-process callers that run several commands)."""
    global _console
    _console = None
    log.handlers.clear()
    wire = logging.getLogger("httpx")
    wire.handlers.clear()
    wire.setLevel(logging.NOTSET)
    wire.propagate = True


class Counter:
    """A progress count: :meth:`advance` as work items finish."""

    def __init__(self, description: str, total: int, progress: Progress | None) -> None:
        self.description, self.total, self.done = description, total, 0
        self._progress = progress
        self._task = progress.add_task(description, total=total) if progress is not None else None
        self._logged = time.monotonic()

    def advance(self, step: int = 1) -> None:
        self.done += step
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, step)
        elif time.monotonic() - self._logged >= PLAIN_EVERY and self.done < self.total:
            self._logged = time.monotonic()
            log.info("%s: %d of %d", self.description, self.done, self.total)


@contextmanager
def progress(description: str, total: int) -> Iterator[Counter]:
    """A progress bar on a terminal (plain lines every few seconds otherwise)."""
    if _console is None:
        yield Counter(description, total, None)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=_console, transient=True) as bar:
        yield Counter(description, total, bar)


@contextmanager
def spinner(description: str) -> Iterator[None]:
    """A spinner with the elapsed time while waiting on the node (nothing when not on a terminal)."""
    if _console is None:
        yield
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=_console, transient=True) as bar:
        bar.add_task(description, total=None)
        yield
