"""The pump's pipe run: source, transform and sink stages as Trio tasks joined by bounded channels.

:func:`run_pipeline` drives one :class:`~actors.PipeRun`. The source stage reads batches in worker threads,
the transform stage maps them in worker threads, and the sink stage hands each batch's
:class:`~actors.DatasetWrite` to the sink dataset's actor, which commits data and offsets together. A
channel holds at most ``depth`` batches, so a slow sink slows the source and memory stays bounded by
the batch size, whatever the size of the dataset. Reads and LevelDB writes release the GIL, so the stages
overlap.

A stop request is polled by the source stage between batches; the batches already read still go through
and commit, so a stopped run ends on a committed offset. A failure in any stage cancels the others and is
raised (a write in progress still completes, with the offset it carries).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import trio

from ._datasets import DatasetWrite
from ._engine import PipeRun, PipeRunner, RunResult, Work

__all__ = ["DEFAULT_DEPTH", "Writer", "run_pipeline"]

DEFAULT_DEPTH = 2  # batches a channel between two stages holds


class Writer(Protocol):
    """Applies dataset writes through each dataset's single writer (:class:`~actors.DatasetWriters`)."""

    async def apply(self, write: DatasetWrite) -> Any: ...


async def run_pipeline(runner: PipeRunner, *, kind: str = "auto", writers: Writer,
                       should_stop: Callable[[], bool] = lambda: False, depth: int = DEFAULT_DEPTH,
                       on_begin: Callable[[PipeRun], None] | None = None) -> RunResult:
    """Run the pipe once through its stages (see the module docstring); returns what the run did.

    ``on_begin`` gets the :class:`~actors.PipeRun` before its first batch (its ``result`` shows progress)."""
    run = await trio.to_thread.run_sync(runner.begin, kind)
    if on_begin is not None:
        on_begin(run)
    first = run.start()
    run.started(await writers.apply(first) if first is not None else None)
    to_transform, from_source = trio.open_memory_channel[Work](depth)
    to_sink, from_transform = trio.open_memory_channel[Work](depth)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_source_stage, run, should_stop, to_transform)
            nursery.start_soon(_transform_stage, run, from_source, to_sink)
            nursery.start_soon(_sink_stage, run, from_transform, writers, runner.sink.blocking)
    except BaseExceptionGroup as group:  # report the failing stage's error itself
        errors = group.exceptions
        if len(errors) == 1 and isinstance(errors[0], Exception):
            raise errors[0] from None
        raise
    for write in run.end():
        await writers.apply(write)
    return run.result


async def _source_stage(run: PipeRun, should_stop: Callable[[], bool], out: trio.MemorySendChannel[Work]) -> None:
    async with out:
        batches = run.batches(should_stop)
        while (work := await trio.to_thread.run_sync(next, batches, None)) is not None:
            await out.send(work)


async def _transform_stage(run: PipeRun, batches: trio.MemoryReceiveChannel[Work],
                           out: trio.MemorySendChannel[Work]) -> None:
    async with batches, out:
        async for work in batches:
            await out.send(await trio.to_thread.run_sync(run.transform, work))


async def _sink_stage(run: PipeRun, batches: trio.MemoryReceiveChannel[Work], writers: Writer,
                      blocking: bool) -> None:
    async with batches:
        async for work in batches:
            started = time.perf_counter()
            write = await trio.to_thread.run_sync(run.write, work) if blocking else run.write(work)
            await writers.apply(write)
            run.result.sink_time += time.perf_counter() - started
