"""Dataset actors: the single writer of each dataset, as the node uses them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

import storage
from actors import Datasets, DatasetWrite, DatasetWriters, Supervisor, WriterClosed


def append(name: str, *entities: dict[str, Any]) -> DatasetWrite:
    return DatasetWrite(name, lambda dataset: dataset.write(list(entities)).appended)


@asynccontextmanager
async def node_writers(datasets: Datasets, commits: list[str] | None = None) -> AsyncIterator[DatasetWriters]:
    on_commit = commits.append if commits is not None else None
    async with Supervisor() as supervisor:
        writers = DatasetWriters(datasets, on_commit=on_commit)
        writers.attach(supervisor)
        yield writers


async def test_writes_from_many_tasks_are_applied_in_arrival_order_by_one_actor(
    datasets: Datasets, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actors import _dataset_actor

    hops: list[int] = []
    original = _dataset_actor._apply

    def counting(datasets: Datasets, name: str, requests: list[Any]) -> bool:
        hops.append(len(requests))
        return original(datasets, name, requests)

    monkeypatch.setattr(_dataset_actor, "_apply", counting)
    async with node_writers(datasets) as writers:
        results: dict[int, int] = {}

        async def writer(i: int) -> None:
            results[i] = await writers.apply(append("d", {"_id": f"e{i}", "n": i}))

        async with trio.open_nursery() as nursery:
            for i in range(40):
                nursery.start_soon(writer, i)
        assert writers.running() == ["d"]
    assert results == {i: 1 for i in range(40)}
    assert sum(hops) == 40 and len(hops) < 40  # queued writes share a worker-thread hop
    stored = [e["_id"] for e in datasets.open("d").iter_entities()]
    assert sorted(stored) == sorted(f"e{i}" for i in range(40)) and len(stored) == 40


async def test_a_failing_write_fails_its_sender_only(datasets: Datasets) -> None:
    def broken(dataset: storage.Dataset) -> None:
        raise ValueError("bad batch")

    async with Supervisor() as supervisor:
        writers = DatasetWriters(datasets)
        writers.attach(supervisor)
        with pytest.raises(ValueError, match="bad batch"):
            await writers.apply(DatasetWrite("d", broken))
        assert await writers.apply(append("d", {"_id": "a"})) == 1
        status = supervisor.status("dataset:d")
        assert status.state == "running" and status.restarts == 0


async def test_commits_are_announced_only_when_the_dataset_grew(datasets: Datasets) -> None:
    commits: list[str] = []
    async with node_writers(datasets, commits) as writers:
        await writers.apply(append("d", {"_id": "a", "v": 1}))
        await writers.apply(append("d", {"_id": "a", "v": 1}))  # unchanged: no new version
        await writers.apply(DatasetWrite("d", lambda dataset: dataset.write([], offset_key="k", offset=1)))
        await writers.apply(append("other", {"_id": "b"}))
    assert commits == ["d", "other"]


async def test_close_waits_for_sent_writes_and_refuses_new_ones(datasets: Datasets) -> None:
    release = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def slow(dataset: storage.Dataset) -> int:
        trio.from_thread.run(release.wait, trio_token=token)
        return dataset.write([{"_id": "slow"}]).appended

    async with node_writers(datasets) as writers:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writers.apply, DatasetWrite("d", slow))
            await trio.testing.wait_all_tasks_blocked()
            closed = trio.Event()

            async def close() -> None:
                await writers.close("d")
                closed.set()

            nursery.start_soon(close)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(WriterClosed, match="dataset 'd' is being removed"):
                await writers.apply(append("d", {"_id": "late"}))
            assert not closed.is_set()  # the slow write is still being applied
            release.set()
        assert writers.running() == []
        assert [e["_id"] for e in datasets.open("d").iter_entities()] == ["slow"]
        assert await writers.apply(append("d", {"_id": "after"})) == 1  # a new actor
        assert writers.running() == ["d"]


async def test_a_write_taken_by_the_actor_is_applied_even_if_its_sender_is_cancelled(datasets: Datasets) -> None:
    started = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def slow(dataset: storage.Dataset) -> int:
        trio.from_thread.run_sync(started.set, trio_token=token)
        trio.from_thread.run(trio.sleep, 0.05, trio_token=token)
        return dataset.write([{"_id": "kept"}]).appended

    async with node_writers(datasets) as writers:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writers.apply, DatasetWrite("d", slow))
            await started.wait()
            nursery.cancel_scope.cancel()
        await writers.apply(append("d", {"_id": "next"}))
    assert [e["_id"] for e in datasets.open("d").iter_entities()] == ["kept", "next"]


async def test_a_stopped_actor_answers_queued_writes_and_refuses_new_ones(datasets: Datasets) -> None:
    """A writer never waits for an actor that has stopped (node shutdown): queued writes and later ones get
    WriterClosed."""
    token = trio.lowlevel.current_trio_token()
    busy, release = trio.Event(), trio.Event()

    def blocking(dataset: storage.Dataset) -> int:
        trio.from_thread.run_sync(busy.set, trio_token=token)
        trio.from_thread.run(release.wait, trio_token=token)
        return dataset.write([{"_id": "first"}]).appended

    outcomes: list[Any] = []

    async def write_and_note(write: DatasetWrite) -> None:
        try:
            outcomes.append(await writers.apply(write))
        except WriterClosed as exc:
            outcomes.append(exc)

    async with Supervisor() as supervisor:
        writers = DatasetWriters(datasets)
        writers.attach(supervisor)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write_and_note, DatasetWrite("d", blocking))
            await busy.wait()  # the actor is applying the first write (shielded)
            nursery.start_soon(write_and_note, append("d", {"_id": "queued"}))
            await trio.testing.wait_all_tasks_blocked()
            stopping = trio.Event()

            async def stop() -> None:
                await supervisor.stop(DatasetWriters.actor_name("d"))
                stopping.set()

            nursery.start_soon(stop)
            await trio.testing.wait_all_tasks_blocked()
            release.set()  # the write in progress completes; the queued one is refused
            await stopping.wait()
        with pytest.raises(WriterClosed, match="has stopped"):
            await writers.apply(append("d", {"_id": "late"}))
    assert outcomes[0] == 1 and isinstance(outcomes[1], WriterClosed)
    assert [e["_id"] for e in datasets.open("d").iter_entities()] == ["first"]


async def test_without_a_supervisor_writes_run_under_the_lock(datasets: Datasets) -> None:
    commits: list[str] = []
    writers = DatasetWriters(datasets, on_commit=commits.append)
    assert await writers.apply(append("d", {"_id": "a"})) == 1
    assert writers.running() == [] and commits == ["d"]
