"""Soak: a real ``sesamd serve`` for a few minutes under steady load, its RSS and open file descriptors flat.

The load, all at once: a receiver (``http_endpoint``) fed a batch every 0.2 s with ids cycling over a fixed
set (so versions keep being written), a dataset pipe chain behind it (DTL, the second with a hop into a
scheduled embedded pipe's dataset), a config reload every 10 s that changes the embedded pipe's entities,
API reads every second, and three websocket subscribers of ``/api/events`` reading everything.

The node runs with 1 MiB LevelDB write buffers and block caches per dataset (``SMALL_BUFFERS``), so that
LevelDB's own memory (up to two write buffers and a cache per open dataset: 8 + 8 + 8 MiB each by default,
filling for minutes at this write rate) is small next to what a leak would add. The server's RSS and fd count
are sampled every 3 s and printed. Anonymous memory is what is compared (RSS minus file-backed pages: the
mapped LevelDB tables grow with the data, as they should, up to their limit).

Warm-up first: pushes as fast as the node takes them until the event feed's ring buffer
(``sesamd._feed.DEFAULT_CAPACITY`` events, kept for resuming subscribers) is full. Filling it is bounded
growth, but large: about 7 KiB per event measured here, some 70 MB for 10,000, which at the steady rate
(~45 events/s) would take four minutes and look like a leak. Then the steady load runs ``DURATION`` seconds,
the samples are cut into thirds, and the last third's maximum must stay within a margin of the first
third's maximum:

- anonymous RSS: 15 % or 24 MiB, whichever is more. Legitimate growth after warm-up is bounded: per open dataset
  (four sinks, their execution logs) LevelDB keeps up to two 1 MiB write buffers and a 1 MiB block cache
  and maps table files, and malloc keeps some freed memory. A leak per request, event, batch or reload
  grows without bound with the ~1,000 requests, thousands of events and ~15 reloads of the run: it shows
  as a rising last third.
- fds: 16 more at most. LevelDB opens table files as compactions make them (bounded by its table cache)
  and the subscribers' and clients' sockets stay open throughout; a leaked file or socket per request or
  reload would be hundreds.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import trio
from trio_websocket import open_websocket_url

from sesamd._feed import DEFAULT_CAPACITY as FEED_CAPACITY
from sesamd.testing import Daemon, serve_process

DURATION = float(os.environ.get("SESAMD_SOAK_SECONDS", "120"))
SAMPLE_EVERY = 3.0
IDS = 2000
BATCH = 50
SMALL_BUFFERS = ("--dataset-write-buffer-mb", "1", "--dataset-cache-mb", "1")


def config(generation: int) -> list[dict[str, Any]]:
    return [
        {"_id": "incoming", "type": "pipe", "source": {"type": "http_endpoint"}},
        {"_id": "labels", "type": "pipe", "pump": {"schedule_interval": 1},
         "source": {"type": "embedded", "entities": [
             {"_id": f"g{g}", "label": f"group {g} of generation {generation}"} for g in range(10)]}},
        {"_id": "enriched", "type": "pipe", "source": {"type": "dataset", "dataset": "incoming"},
         "transform": {"type": "dtl", "rules": {"default": [
             ["copy", "*"], ["add", "title", ["upper", "_S.name"]],
             ["add", "group", ["concat", ["list", "g", ["string", ["mod", "_S.n", 10]]]]]]}}},
        {"_id": "summary", "type": "pipe", "source": {"type": "dataset", "dataset": "enriched"},
         "transform": {"type": "dtl", "rules": {"default": [
             ["copy", "_id"], ["copy", "title"],
             ["add", "label", ["first", ["path", "label", ["hops", {
                 "datasets": ["labels l"], "where": [["eq", "_S.group", "l._id"]]}]]]]]}}},
    ]


class Load:
    """What the load did (counted, so the test can tell the node kept working)."""

    def __init__(self) -> None:
        self.pushed = self.reloads = self.reads = 0
        self.events = [0, 0, 0]
        self.seq = 0  # the highest event seq a subscriber saw
        self.failures: list[str] = []
        self.samples: list[tuple[float, int, int, int]] = []  # (seconds since start, RSS, anonymous RSS, fds)


async def push(client: httpx.AsyncClient, load: Load, until: float, pause: float = 0.2) -> None:
    n = 0
    while time.monotonic() < until and (pause or load.seq < FEED_CAPACITY):
        batch = [{"_id": f"e{(n + i) % IDS}", "n": n + i, "name": f"entity {n + i}"} for i in range(BATCH)]
        n += BATCH
        response = await client.post("/receivers/incoming/entities", json=batch)
        if response.status_code != 200:
            load.failures.append(f"push: {response.status_code} {response.text[:200]}")
        load.pushed += 1
        await trio.sleep(pause)


async def reload(client: httpx.AsyncClient, load: Load, until: float) -> None:
    generation = 0
    while time.monotonic() < until:
        await trio.sleep(10)
        generation += 1
        response = await client.put("/config", json=config(generation))
        if response.status_code != 200 or response.json() != {"validation_errors": []}:
            load.failures.append(f"reload: {response.status_code} {response.text[:200]}")
        load.reloads += 1


async def read(client: httpx.AsyncClient, load: Load, until: float) -> None:
    paths = ["/pipes", "/datasets", "/pipes/summary/pump", "/datasets/summary/entities?limit=100", "/ready",
             "/pipes/enriched/log?history=false", "/systems", "/status"]
    while time.monotonic() < until:
        for path in paths:
            response = await client.get(path)
            if response.status_code != 200:
                load.failures.append(f"GET {path}: {response.status_code} {response.text[:200]}")
            load.reads += 1
        await trio.sleep(1)


async def subscribe(daemon: Daemon, load: Load, index: int, until: float) -> None:
    headers = [(b"Authorization", f"Bearer {daemon.token}".encode())]
    async with open_websocket_url(daemon.ws_url + "/events", extra_headers=headers) as ws:
        while time.monotonic() < until:
            with trio.move_on_after(max(0.1, until - time.monotonic())):
                event = json.loads(await ws.get_message())
                if event["type"] == "lagged":
                    load.failures.append(f"subscriber {index} lagged: {event}")
                load.seq = max(load.seq, event.get("seq") or 0)
                load.events[index] += 1


async def sample(process: psutil.Process, load: Load, started: float, until: float) -> None:
    while time.monotonic() < until:
        memory = process.memory_info()  # anonymous = RSS minus file-backed and shared pages (LevelDB's mapped tables)
        load.samples.append((time.monotonic() - started, memory.rss, memory.rss - memory.shared, process.num_fds()))
        await trio.sleep(SAMPLE_EVERY)


def thirds(values: list[int]) -> tuple[list[int], list[int]]:
    third = len(values) // 3
    return values[:third], values[-third:]


@pytest.mark.slow
@pytest.mark.timeout(DURATION + 240)
async def test_rss_and_fds_stay_flat_under_steady_load(tmp_path: Path) -> None:
    load = Load()
    with serve_process(tmp_path / "data", *SMALL_BUFFERS) as daemon:
        async with httpx.AsyncClient(base_url=daemon.url, headers=daemon.headers, timeout=60) as client:
            response = await client.put("/config", json=config(0))
            assert response.status_code == 200, response.text
            await client.post("/receivers/incoming/entities", json=[{"_id": "e0", "n": 0, "name": "entity 0"}])
            with trio.fail_after(60):  # the chain made its datasets
                while (await client.get("/datasets/summary")).status_code != 200:
                    await trio.sleep(0.2)
            async with trio.open_nursery() as warm_up:  # fill the feed's ring buffer, pushing flat out
                warm_up.start_soon(push, client, load, time.monotonic() + 600, 0)
                for index in range(3):
                    warm_up.start_soon(subscribe, daemon, load, index, time.monotonic() + 600)
                with trio.fail_after(600):
                    while load.seq < FEED_CAPACITY:
                        await trio.sleep(0.5)
                warm_up.cancel_scope.cancel()
            warmed = (load.pushed, load.seq)
            started = time.monotonic()
            until = started + DURATION
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sample, psutil.Process(daemon.process.pid), load, started, until)
                for index in range(3):
                    nursery.start_soon(subscribe, daemon, load, index, until)
                nursery.start_soon(push, client, load, until)
                nursery.start_soon(reload, client, load, until)
                nursery.start_soon(read, client, load, until)
            summary = (await client.get("/datasets/summary")).json()
        assert daemon.terminate() == 0

    print(f"\nsoak: warm-up {warmed[0]} pushes to event seq {warmed[1]}; then {DURATION:.0f} s: {load.pushed} "
          f"pushes of {BATCH} in all, {load.reloads} reloads, {load.reads} reads, events per subscriber {load.events}")
    print(f"{'t (s)':>6} {'RSS (MiB)':>10} {'anon (MiB)':>11} {'fds':>5}")
    for at, rss, anon, fds in load.samples:
        print(f"{at:6.0f} {rss / 2**20:10.1f} {anon / 2**20:11.1f} {fds:5d}")
    assert load.failures == []
    assert load.reloads >= DURATION // 10 - 1 and load.pushed > DURATION * 2
    assert all(count > 100 for count in load.events), load.events  # every subscriber kept receiving
    assert summary["runtime"]["count-index-exists"] == IDS  # the chain delivered every id

    steady = load.samples
    assert len(steady) >= 9, load.samples
    first, last = thirds([anon for _, _, anon, _ in steady])
    margin = max(24 * 2**20, max(first) * 0.15)
    assert max(last) <= max(first) + margin, f"RSS grew: {max(first) / 2**20:.1f} -> {max(last) / 2**20:.1f} MiB"
    first_fds, last_fds = thirds([fds for *_, fds in steady])
    assert max(last_fds) <= max(first_fds) + 16, f"fds grew: {max(first_fds)} -> {max(last_fds)}"
