"""The pump's run driver: stages on bounded channels writing through dataset actors; run kinds and
continuation strategies of the engine core."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from actors import (
    Datasets,
    DatasetWrite,
    DatasetWriters,
    PipeRunError,
    Supervisor,
    build_runner,
    run_pipeline,
)
from actors.components import Source, component
from actors.testing import RecordingWriters

N = 250


@component("source", "test_unordered_since", {"properties": {"values": {"type": "array"}}})
class UnorderedSinceSource(Source):
    """Test double: supports since, but emits ``_updated`` out of order (the ``max`` strategy)."""

    supports_since = True
    is_chronological = False

    def read(self, since: Any | None, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        values = [v for v in self.config["values"] if since is None or v > since]
        entities = [{"_id": f"u{v}", "_updated": v, "v": v} for v in values]
        for start in range(0, len(entities), batch_size):
            yield entities[start:start + batch_size]



@asynccontextmanager
async def node_writers(datasets: Datasets) -> AsyncIterator[DatasetWriters]:
    async with Supervisor() as supervisor:
        writers = DatasetWriters(datasets)
        writers.attach(supervisor)
        yield writers


def people(datasets: Datasets, n: int = N) -> None:
    build_runner({"_id": "people", "type": "pipe", "source": {"type": "embedded", "entities": [
        {"_id": f"p{i:04}", "n": i, "group": f"g{i % 7}"} for i in range(n)]}}, datasets).run()
    build_runner({"_id": "groups", "type": "pipe", "source": {"type": "embedded", "entities": [
        {"_id": f"g{k}", "label": f"Group {k}"} for k in range(7)]}}, datasets).run()


def copy_pipe(pipe_id: str, **extra: Any) -> dict[str, Any]:
    return {"_id": pipe_id, "type": "pipe", "batch_size": 10, "source": {"type": "dataset", "dataset": "people"},
            "transform": {"type": "dtl", "rules": {"default": [
                ["copy", "*"],
                ["add", "label", ["first", ["hops", {"datasets": ["groups g"],
                                                     "where": [["eq", "_S.group", "g._id"]],
                                                     "return": "g.label"}]]]]}}, **extra}


def latest(datasets: Datasets, name: str) -> dict[str, dict[str, Any]]:
    return {e["_id"]: e for e in datasets.open(name).iter_entities(history=False)}


class SlowWriters:
    """Writers that note how far the source had read when each write arrived, and take their time."""

    def __init__(self, inner: DatasetWriters, run_of: list[Any]) -> None:
        self.inner = inner
        self.read_at_write: list[int] = []
        self._run_of = run_of

    async def apply(self, write: DatasetWrite, *, run_on: Any = None) -> Any:
        if self._run_of:
            result = self._run_of[0].result
            self.read_at_write.append(result.processed - 10 * (result.batches + 1))
        await trio.sleep(0.005)
        return await self.inner.apply(write, run_on=run_on)


async def test_the_pipeline_writes_what_the_synchronous_run_writes(datasets: Datasets) -> None:
    people(datasets)
    build_runner(copy_pipe("sync-copy"), datasets).run()
    runner = build_runner(copy_pipe("staged-copy"), datasets)
    async with node_writers(datasets) as writers:
        result = await run_pipeline(runner, writers=writers)
        assert writers.running() == ["staged-copy"]  # written by the sink dataset's actor
    assert (result.sync_type, result.processed, result.changes, result.batches) == ("full", N, N, N // 10)
    staged, synced = latest(datasets, "staged-copy"), latest(datasets, "sync-copy")
    strip = ("_updated", "_ts")
    assert [{k: v for k, v in e.items() if k not in strip} for e in staged.values()] == \
           [{k: v for k, v in e.items() if k not in strip} for e in synced.values()]
    assert staged["p0008"]["label"] == "Group 1"
    assert runner.get_offset() == N - 1 and result.source_time > 0 and result.transform_time > 0


async def test_channels_bound_how_far_the_source_reads_ahead_of_a_slow_sink(datasets: Datasets) -> None:
    people(datasets)
    runner = build_runner(copy_pipe("out"), datasets)
    runs: list[Any] = []
    original_begin = runner.begin

    def begin(kind: str = "auto") -> Any:
        runs.append(original_begin(kind))
        return runs[-1]

    runner.begin = begin  # type: ignore[method-assign]
    async with node_writers(datasets) as inner:
        writers = SlowWriters(inner, runs)
        await run_pipeline(runner, writers=writers, depth=1, chunk_entities=10)  # chunks of one batch
    # a batch being written can be overtaken by at most one batch in each channel (depth 1), one being
    # transformed and one being read
    ahead = writers.read_at_write
    assert len(ahead) == N // 10 + 3  # the batches, the full run's start, its end and the populated flag
    assert 0 < max(ahead) <= 4 * 10  # the stages overlap, and the source never runs further ahead


async def test_stages_hand_over_chunks_of_whole_batches_each_committed_on_its_own(datasets: Datasets) -> None:
    people(datasets)
    runner = build_runner(copy_pipe("out"), datasets)
    async with node_writers(datasets) as inner:
        writers = RecordingWriters(inner)
        result = await run_pipeline(runner, writers=writers, chunk_entities=30)
    chunks = [value for value in writers.returned("out") if isinstance(value, list)]
    assert [len(chunk) for chunk in chunks] == [3] * 8 + [1]  # 25 batches of 10, three per hand-off
    assert [changes for chunk in chunks for changes in chunk] == [10] * 25  # each batch its own commit
    assert (result.batches, result.changes, runner.get_offset()) == (25, N, N - 1)


def test_a_sequence_of_writes_keeps_the_commits_before_a_failing_one(datasets: Datasets) -> None:
    def put(entity_id: str) -> DatasetWrite:
        return DatasetWrite("seq", lambda d: d.write([{"_id": entity_id}]).appended)

    def fail(dataset: Any) -> None:
        raise RuntimeError("third write fails")

    assert datasets.apply(DatasetWrite.sequence([put("a"), put("b")])) == [1, 1]
    with pytest.raises(RuntimeError, match="third"):
        datasets.apply(DatasetWrite.sequence([put("c"), put("d"), DatasetWrite("seq", fail), put("e")]))
    assert set(latest(datasets, "seq")) == {"a", "b", "c", "d"}
    with pytest.raises(ValueError, match="exactly one dataset"):
        DatasetWrite.sequence([put("a"), DatasetWrite("other", fail)])
    with pytest.raises(ValueError, match="at least one"):
        DatasetWrite.sequence([])


async def test_a_stop_commits_the_batches_already_read_and_the_next_run_resumes(datasets: Datasets) -> None:
    people(datasets)
    runner = build_runner(copy_pipe("out"), datasets)
    polls = iter(range(1000))
    async with node_writers(datasets) as writers:  # chunks of 3 batches: the stop comes inside the second
        stopped = await run_pipeline(runner, writers=writers, should_stop=lambda: next(polls) >= 5,
                                     chunk_entities=30)
        assert stopped.stopped and stopped.processed == 50
        assert runner.get_offset() == 49  # the last batch read was committed with its offset
        assert len(latest(datasets, "out")) == 50
        rest = await run_pipeline(runner, writers=writers)
    assert not rest.stopped and rest.sync_type == "incremental" and rest.processed == N - 50
    out = datasets.open("out")
    assert len(latest(datasets, "out")) == N and out.next_offset == N  # every entity once, one version each


async def test_a_failing_stage_raises_its_error_and_keeps_the_committed_offset(datasets: Datasets) -> None:
    people(datasets)
    config = copy_pipe("out")
    config["transform"]["rules"]["default"].append(["if", ["eq", "_S.n", 123], ["fail!", "bad person"]])
    runner = build_runner(config, datasets)
    async with node_writers(datasets) as writers:
        with pytest.raises(PipeRunError, match="bad person") as caught:
            await run_pipeline(runner, writers=writers, chunk_entities=30)
    assert caught.value.entity["_id"] == "p0123"
    offset = runner.get_offset()
    assert offset is not None and offset < 120  # batches before the failing one, no further
    assert len(latest(datasets, "out")) == offset + 1


async def test_a_hop_change_reprocesses_only_the_dependents_through_the_pipeline(datasets: Datasets) -> None:
    people(datasets)
    runner = build_runner(copy_pipe("out"), datasets)
    async with node_writers(datasets) as writers:
        await run_pipeline(runner, writers=writers)
        await writers.apply(DatasetWrite("groups", lambda d: d.write([{"_id": "g3", "label": "Third"}])))
        result = await run_pipeline(runner, writers=writers)
    affected = [i for i in range(N) if i % 7 == 3]
    assert (result.sync_type, result.processed, result.dependencies, result.changes) == \
           ("incremental", 0, len(affected), len(affected))
    assert latest(datasets, "out")[f"p{affected[0]:04}"]["label"] == "Third"


def test_rescan_is_a_full_run_with_deletion_tracking(datasets: Datasets) -> None:
    people(datasets, 20)
    runner = build_runner(copy_pipe("out"), datasets)
    runner.run()
    build_runner({"_id": "people", "type": "pipe", "source": {"type": "embedded", "entities": [
        {"_id": f"p{i:04}", "n": i, "group": f"g{i % 7}"} for i in range(15)]}}, datasets).run()
    result = runner.run(kind="rescan")
    assert (result.sync_type, result.rescan, result.processed) == ("full", True, 20)  # deletes propagate too
    assert result.deleted == 0  # the deleted source entities arrive as deletes; nothing is unseen
    assert sum(1 for e in latest(datasets, "out").values() if e.get("_deleted")) == 5
    again = runner.run(kind="rescan")
    assert again.changes == 0 and again.sync_type == "full"


def test_partial_rescan_rewinds_the_offset_by_the_delta(datasets: Datasets) -> None:
    people(datasets, 30)
    runner = build_runner(copy_pipe("out", pump={"partial_rescan_delta": 12}), datasets)
    runner.run()
    assert runner.get_offset() == 29
    result = runner.run(kind="partial")
    assert (result.sync_type, result.processed, result.changes, result.deleted) == ("partial", 12, 0, 0)
    assert runner.get_offset() == 29
    runner.set_offset("")
    assert runner.run(kind="partial").sync_type == "full"  # no offset: nothing to rewind


def test_partial_rescan_rewinds_a_time_offset_by_seconds() -> None:
    from actors._engine import _rewind

    assert _rewind("~t2024-01-01T00:01:00Z", 90) == "~t2023-12-31T23:59:30Z"
    assert _rewind(5, 10) == -1 and _rewind(50, 10) == 40 and _rewind("abc", 3) == "abc"


def test_max_strategy_commits_the_largest_updated_only_at_the_end(datasets: Datasets) -> None:
    config = {"_id": "m", "type": "pipe", "batch_size": 2,
              "source": {"type": "test_unordered_since", "values": [5, 3, 9, 1, 7]}}
    runner = build_runner(config, datasets)
    offsets: list[Any] = []
    original = datasets.apply

    def apply(write: DatasetWrite) -> Any:
        value = original(write)
        offsets.append(runner.get_offset())
        return value

    datasets.apply = apply  # type: ignore[method-assign]
    first = runner.run()
    assert first.sync_type == "full" and runner.get_offset() == 9
    assert offsets[:-2] == [None, None, None, None]  # begin + three batches: the old offset until the end
    second = runner.run()
    assert second.sync_type == "incremental" and second.processed == 0  # nothing after 9
    assert sorted(latest(datasets, "m")) == ["u1", "u3", "u5", "u7", "u9"]


def test_unknown_run_kind_is_refused(datasets: Datasets) -> None:
    runner = build_runner({"_id": "e", "type": "pipe", "source": {"type": "empty"}}, datasets)
    with pytest.raises(ValueError, match="unknown run kind 'sideways'"):
        runner.run(kind="sideways")


def test_writes_are_values_until_applied(datasets: Datasets) -> None:
    people(datasets, 5)
    runner = build_runner(copy_pipe("out"), datasets)
    run = runner.begin()
    start = run.start()
    assert start is not None and start.dataset == "out" and not datasets.exists("out")
    run.started(datasets.apply(start))
    works = list(run.batches())
    writes = [run.write(run.transform(work)) for work in works]
    assert [w.dataset for w in writes] == ["out"] and len(latest(datasets, "out")) == 0
    assert [datasets.apply(w) for w in writes] == [5]
    assert runner.get_offset() == 4  # committed with the batch
    ends = list(run.end())
    assert [w.dataset for w in ends] == ["out", "out"]  # deletion tracking, populated flag
    assert not datasets.open("out").populated
    for write in ends:
        datasets.apply(write)
    assert datasets.open("out").populated


@pytest.mark.parametrize(("overlap_writes", "most_at_once"), [(False, 1), (True, 2)])
async def test_a_runs_stages_take_turns_unless_writes_may_overlap(
    datasets: Datasets, overlap_writes: bool, most_at_once: int
) -> None:
    import threading
    import time

    people(datasets, 100)
    runner = build_runner(copy_pipe("out"), datasets)
    active, peak, guard = [0], [0], threading.Lock()

    def busy(function: Any) -> Any:
        def wrapped(*args: Any) -> Any:
            with guard:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            try:
                time.sleep(0.002)  # widen the window in which another stage could run
                return function(*args)
            finally:
                with guard:
                    active[0] -= 1
        return wrapped

    original_begin = runner.begin

    def begin(kind: str = "auto") -> Any:
        run = original_begin(kind)
        run.transform = busy(run.transform)
        original_write = run.write

        def write(work: Any) -> DatasetWrite:
            planned = original_write(work)
            return dataclasses.replace(planned, apply=busy(planned.apply))

        run.write = write
        return run

    runner.begin = begin  # type: ignore[method-assign]
    async with node_writers(datasets) as writers:
        result = await run_pipeline(runner, writers=writers, overlap_writes=overlap_writes, chunk_entities=10)
    assert result.processed == 100 and len(latest(datasets, "out")) == 100
    assert peak[0] == most_at_once


async def test_reads_transforms_and_the_actors_writes_of_a_run_happen_on_the_runs_thread(datasets: Datasets) -> None:
    import threading

    people(datasets, 50)
    runner = build_runner(copy_pipe("out"), datasets)
    threads: dict[str, set[str]] = {"transform": set(), "write": set()}
    original_begin = runner.begin

    def begin(kind: str = "auto") -> Any:
        run = original_begin(kind)
        original_transform, original_write = run.transform, run.write

        def transform(work: Any) -> Any:
            threads["transform"].add(threading.current_thread().name)
            return original_transform(work)

        def write(work: Any) -> DatasetWrite:
            planned = original_write(work)

            def apply(dataset: Any) -> Any:
                threads["write"].add(threading.current_thread().name)
                return planned.apply(dataset)

            return dataclasses.replace(planned, apply=apply)

        run.transform, run.write = transform, write
        return run

    runner.begin = begin  # type: ignore[method-assign]
    async with node_writers(datasets) as writers:
        await run_pipeline(runner, writers=writers)
        assert writers.running() == ["out"]  # the dataset's actor decided when to apply each
    assert len(threads["transform"]) == 1 and threads["write"] == threads["transform"]
    assert next(iter(threads["write"])).startswith("sesamd-run")
