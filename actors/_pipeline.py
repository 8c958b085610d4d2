"""The pump's pipe run: source, transform and sink stages as Trio tasks joined by bounded channels.

:func:`run_pipeline` drives one :class:`~actors.PipeRun`. The source stage reads batches in worker threads,
the transform stage maps them in worker threads, and the sink stage hands the batches'
:class:`~actors.DatasetWrite` values to the sink dataset's actor, which commits data and offsets together,
one commit per batch. What moves between the stages is a chunk: the next whole batches, about
``CHUNK_ENTITIES`` source entities (at least one batch). A channel holds at most ``depth`` chunks, so a
slow sink slows the source and memory stays bounded, whatever the size of the dataset.

Chunks exist because every hand-off between a stage and its thread costs about half a millisecond (thread
wake-ups, Trio's own work while the run's thread waits) whatever the batch's size: with Sesam's default
``batch_size`` of 100 a stage per batch would spend about as long handing off as working.

The stages take turns on one worker thread of the run's own: one of a run's stages works at a time
(``overlap_writes`` lets the sink's write overlap the next chunk's read and transform). Under the GIL,
Python work in two threads only contends, and worse: a stage that releases the GIL for each LevelDB read (a
DTL hop's lookups) waits for it again behind the other stage's switch interval; and a batch read on one
thread and transformed on another (another core) runs colder. Measured on the pipe benchmark (100k
entities), with the synchronous loop as 1.0: stages running freely 0.5-0.6 (hop), taking turns on pooled
threads 0.7-0.8, taking turns on the run's thread about 0.95. The channels still carry the back-pressure,
bound memory and let a stop drain what was read.

A stop request is polled by the source stage between batches; the batches already read still go through
and commit, so a stopped run ends on a committed offset. A failure in any stage cancels the others and is
raised (a write in progress still completes, with the offset it carries).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any, Protocol, TypeVar

import trio

from ._datasets import DatasetWrite
from ._engine import PipeRun, PipeRunError, PipeRunner, RunResult, Work

__all__ = ["DEFAULT_DEPTH", "Writer", "run_pipeline"]

_T = TypeVar("_T")

CHUNK_ENTITIES = 1000  # source entities a stage takes per turn, in whole batches (at least one)
DEFAULT_DEPTH = 2  # chunks a channel between two stages holds
OVERLAP_WRITES = False  # let the sink's write overlap the next batch's read and transform (measured slower)


class Writer(Protocol):
    """Applies dataset writes through each dataset's single writer (:class:`~actors.DatasetWriters`);
    ``run_on`` offers the run's thread to apply them on."""

    async def apply(self, write: DatasetWrite, *, run_on: Any = None) -> Any: ...


async def run_pipeline(runner: PipeRunner, *, kind: str = "auto", writers: Writer,
                       should_stop: Callable[[], bool] = lambda: False, depth: int = DEFAULT_DEPTH,
                       on_begin: Callable[[PipeRun], None] | None = None,
                       overlap_writes: bool = OVERLAP_WRITES, chunk_entities: int = CHUNK_ENTITIES) -> RunResult:
    """Run the pipe once through its stages (see the module docstring); returns what the run did.

    ``on_begin`` gets the :class:`~actors.PipeRun` before its first batch (its ``result`` shows progress)."""
    run = await trio.to_thread.run_sync(runner.begin, kind)
    if on_begin is not None:
        on_begin(run)
    first = run.start()
    run.started(await writers.apply(first) if first is not None else None)
    per_turn = max(1, chunk_entities // runner.batch_size)
    to_transform, from_source = trio.open_memory_channel[list[Work]](depth)
    to_sink, from_transform = trio.open_memory_channel[list[Work]](depth)
    turn = _Turn(overlap_writes)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_source_stage, run, should_stop, to_transform, turn, per_turn)
            nursery.start_soon(_transform_stage, run, from_source, to_sink, turn)
            nursery.start_soon(_sink_stage, run, from_transform, writers, runner.sink.blocking, turn)
    except BaseExceptionGroup as group:  # report the failing stage's error itself
        errors = group.exceptions
        if len(errors) == 1 and isinstance(errors[0], Exception):
            raise errors[0] from errors[0].__cause__  # not "from None": that would drop the stage error's cause
        raise
    finally:
        turn.close()
    for write in run.end():
        await writers.apply(write)
    return run.result


class _Turn:
    """The run's worker thread, and which stage may use it: one at a time (see the module docstring)."""

    def __init__(self, overlap_writes: bool) -> None:
        self.lock = trio.Lock()
        self.overlap_writes = overlap_writes
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sesamd-run")
        self._token = trio.lowlevel.current_trio_token()
        self.closed = False

    async def run_sync(self, function: Callable[..., Any], *args: Any) -> Any:
        """Call ``function`` on the run's thread when it is this stage's turn."""
        async with self.lock:
            return await self.call(function, *args)

    async def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """Call ``function`` on the run's thread now (the sink dataset's actor does, in the sink's turn).

        Like ``trio.to_thread.run_sync``: a call that has started always finishes (a cancellation takes
        effect after it), and it holds a token of Trio's default thread limiter meanwhile. After the run
        (a write still queued at the actor), it falls back to a pooled thread."""
        if self.closed:
            return await trio.to_thread.run_sync(function, *args)
        async with trio.to_thread.current_default_thread_limiter():
            done = trio.Event()
            future = self._thread.submit(function, *args)
            future.add_done_callback(lambda _: self._token.run_sync_soon(done.set))
            with trio.CancelScope(shield=True):
                await done.wait()
            return future.result()

    def close(self) -> None:
        self.closed = True
        self._thread.shutdown(wait=False)


async def _source_stage(run: PipeRun, should_stop: Callable[[], bool], out: trio.MemorySendChannel[list[Work]],
                        turn: _Turn, per_turn: int) -> None:
    async with out:
        batches = run.batches(should_stop)
        while chunk := await turn.run_sync(_take, batches, per_turn):
            await out.send(chunk)


async def _transform_stage(run: PipeRun, chunks: trio.MemoryReceiveChannel[list[Work]],
                           out: trio.MemorySendChannel[list[Work]], turn: _Turn) -> None:
    async with chunks, out:
        async for chunk in chunks:
            await out.send(await turn.run_sync(_each, run.transform, chunk))


async def _sink_stage(run: PipeRun, chunks: trio.MemoryReceiveChannel[list[Work]], writers: Writer,
                      blocking: bool, turn: _Turn) -> None:
    async with chunks:
        async for chunk in chunks:
            if blocking:
                writes, error_writes, failure = await turn.run_sync(_writes, run, chunk)
            else:
                writes, error_writes, failure = _writes(run, chunk)
            for error_write in error_writes:  # an external sink's write errors, before the offset moves
                await writers.apply(error_write)
            if writes:
                write = DatasetWrite.sequence(writes)  # one hop to the actor; each batch still its own commit
                if turn.overlap_writes:
                    await _timed_apply(run, writers, write)
                else:
                    async with turn.lock:  # the run's thread is free: offer it to the actor
                        await _timed_apply(run, writers, write, turn.call)
            if failure is not None:  # the batches delivered before the failing one are committed
                raise failure


def _writes(run: PipeRun, chunk: list[Work]) -> tuple[list[DatasetWrite], list[DatasetWrite], Exception | None]:
    """The sink's writes of a chunk's batches up to a failing one, the error writes they owe, the failure."""
    writes: list[DatasetWrite] = []
    try:
        for work in chunk:
            writes.append(run.write(work))
    except PipeRunError as exc:
        return writes, run.take_error_writes(), exc
    return writes, run.take_error_writes(), None


def _take(batches: Iterator[Work], count: int) -> list[Work]:
    """The next ``count`` batches (fewer at the end, none after it)."""
    return list(islice(batches, count))


def _each(function: Callable[[Work], _T], chunk: list[Work]) -> list[_T]:
    return [function(work) for work in chunk]


async def _timed_apply(run: PipeRun, writers: Writer, write: DatasetWrite, run_on: Any = None) -> None:
    started = time.perf_counter()
    await writers.apply(write, run_on=run_on)
    run.result.sink_time += time.perf_counter() - started
