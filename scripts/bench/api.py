#!/usr/bin/env python3
"""Benchmark of the REST API and the live feed against real servers, each figure beside a baseline measured in
the same run.

    .venv/bin/python scripts/bench/api.py --quick                  # 100k entities, 3 rounds
    .venv/bin/python scripts/bench/api.py --json bench-api.json    # 1M entities, 3 rounds

Data (written by a setup child with the bulk LevelDB profile before any server starts, not timed):
``people``, N entities of the storage benchmark's shape (about 320 bytes, 12 properties).

Measurements, round-robin per round, each pair alternating which goes first:

``stream.http`` / ``stream.store``
    ``GET /api/datasets/people/entities`` (all N stored versions as one JSON array) from a real
    ``sesamd serve`` subprocess (``sesamd.testing.serve_process``), read by an authenticated httpx client
    that streams the body and counts its bytes, its ``"_id":`` keys and its xxh3 digest; against the same
    stored versions read straight from the store in a child process of its own (``Dataset.iter_stored()``,
    the node LevelDB profile as the server opens datasets, joined into the same array 1000 versions at a time,
    as the API's ``json_array`` does, with the same digest). Checked every round: the body is a JSON array of N
    entities (N ``"_id":`` keys for N stored versions), byte for byte the store's array (length and digest).
    A server is started per round (LevelDB is single-process: the store child and the server take turns),
    and a 2,000-entity stream opens the dataset and warms the server before the measured streams.
``stream.rss``
    The server process's RSS (psutil, every 50 ms, in a thread of the bench) during the N-entity stream:
    before, the peak, and the growth (peak - before), with its anonymous part (RSS - shared, i.e. without
    the mapped LevelDB table files and libraries). The same for a stream of N/10 entities (``limit``) in
    the same server just before: a flat stream grows the server by about as much for N as for N/10.
``pump.no_subscribers`` / ``pump.with_subscribers``
    A dataset-to-dataset pipe ``people`` -> ``["copy", "*"]`` + one ``add`` -> a fresh dataset,
    ``batch_size`` 1000, ``pump: {"mode": "manual"}``, added per run with ``POST /api/pipes`` (a fresh id and
    sink, so every run writes the same N entities) and run by the node's pump (``POST .../pump``
    ``operation=start``; the bench polls ``GET .../pump`` every 100 ms until ``is-running`` is false, in both
    modes), with no subscriber vs with 50 subscribers of ``/api/events`` (admin token in the ``Authorization``
    header; ``pipes=<the run's pipe>``,
    ``types=dataset-changed,pump-started,pump-progress,pump-completed,pump-failed``), all in one child process
    of their own (``_feed_clients.py``: ``selectors`` and wsproto, far cheaper per frame than trio-websocket,
    so that the bench's clients take as little as they can of the 2 cores the server runs on).
    One run with no subscriber, not counted, warms the server first (a server's first run is the slowest).
    Throughput = processed / run time, both from the execution log's ``pump-completed`` entity (``GET
    .../log``: ``entities_succeeded`` and ``total_time``, from the pump's start to its end). Checked per run
    with subscribers: no ``lagged``, every subscriber the same list of seqs, ``dataset-changed`` events
    covering every committed batch (the ``commits`` of each coalesced event add up to ceil(processed / 1000))
    with rising offsets ending at N - 1, and the sink holding N.
    Beside them (no target): the ratio of each round's back-to-back pair; the server's CPU seconds over each
    run (psutil: the whole process, and its main thread, where Trio runs the API, the feed's sessions and the
    pump's coordination; the pipe's stages run in a worker thread), the bench process's and the subscribers'.
``feed.latency``
    Commit -> subscriber: for each ``dataset-changed`` event at each subscriber, the wall-clock receive time
    minus the event's ``first_commit_time`` (the oldest commit a coalesced event covers: ``sesamd._changes``
    holds a dataset's later commits back for at most 50 ms); p50 / p99 / max over every subscriber's events
    of every round.
``token.verified`` / ``token.open``
    ``GET /api/pipes/{id}`` in a loop (a keep-alive httpx client per server, one request at a time; 2,000 per
    round and server quick, 5,000 full, after 200 not timed) against a server whose guard verifies the admin
    token (``sesamd._auth.Authenticator``) vs the same server with ``sesamd.testing.OpenAuthenticator`` (no
    check). Both are children of this script (``--serve-child``: ``open_node`` + a one-pipe config +
    ``create_app(node, auth=...)`` on Hypercorn's Trio worker, as ``sesamd serve`` does), a fresh pair per
    round, each on a data directory of its own, and are sent the same kind of header. They run at once and
    take turns in blocks of 100 requests (ABBA order), so that the machine's drift hits both alike. Checked:
    the verifying server answers a request without a token with 401, the open one with 200.

Targets: HTTP stream / store read >= 0.50; pump throughput with 50 subscribers >= 0.90 of none; commit ->
subscriber p99 < 100 ms; every subscriber gets every event; request rate with token verification >= 0.95 of
the open server's; the stream's anonymous-RSS growth for N within 16 MB of that for N/10 (flat). Median (min-max)
of ``--rounds`` rounds (default 3).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import _common  # before the project's packages: it puts the project root first on sys.path
import httpx
import orjson
import psutil
import trio
import xxhash
from _feed_clients import FeedClients

import storage
from sesamd._process import freeze_startup, tune_process

QUICK_N = 100_000
FULL_N = 1_000_000
BATCH = _common.BATCH  # the pipes' batch_size and the setup's write batch
SUBSCRIBERS = 50
QUICK_REQUESTS = 2_000
FULL_REQUESTS = 5_000
WARMUP_REQUESTS = 200
TOKEN_BLOCK = 100  # requests per turn of a mode in the token loop
STREAM_TARGET = 0.50  # HTTP stream / store read
SUBSCRIBERS_TARGET = 0.90  # pump throughput with the subscribers / without
LATENCY_TARGET_MS = 100.0  # p99 commit -> subscriber
TOKEN_TARGET = 0.95  # requests/s verifying the token / open
FLAT_TARGET = 16 * (1 << 20)  # bytes: anonymous RSS growth streaming N minus streaming N/10
RSS_INTERVAL = 0.05  # seconds between the server's RSS samples
POLL_INTERVAL = 0.1  # seconds between pump polls
STREAM_CHUNK = 1000  # stored versions per join in the store baseline (the API's CHUNK)
WARMUP_STREAM = 2000  # entities streamed once before the measured streams (opens the dataset, warms the server)
MB = 1_000_000

SOURCE = "people"
TOKEN_PIPE = "tiny"
ID_KEY = b'"_id":'
FEED_TYPES = "dataset-changed,pump-started,pump-progress,pump-completed,pump-failed"
TOKEN_MODES = ("verified", "open")
PUMP_MODES = ("no_subscribers", "with_subscribers")

# every named figure, ratio and target of the JSON output (the tests check them)
FIGURES = (
    "setup.seconds", "stream.entities", "stream.bytes",
    *(f"stream.{k}.{f}" for k in ("http", "store") for f in ("seconds", "mb_per_s", "entities_per_s")),
    "stream.rss_before", "stream.rss_peak", "stream.rss_growth", "stream.rss_anon_growth",
    "stream.small.entities", "stream.small.bytes", "stream.small.rss_before", "stream.small.rss_peak",
    "stream.small.rss_growth", "stream.small.rss_anon_growth", "stream.rss_samples",
    *(f"pump.{m}.{f}" for m in PUMP_MODES for f in ("entities_per_s", "seconds", "processed", "server_cpu_s",
                                                    "server_trio_cpu_s", "bench_cpu_s", "subscribers_cpu_s")),
    "pump.subscribers", "pump.batches", "feed.events_per_subscriber", "feed.dataset_changed_per_run",
    "feed.latency_p50_ms", "feed.latency_p99_ms", "feed.latency_max_ms", "feed.latency_samples",
    *(f"token.{m}.{f}" for m in TOKEN_MODES for f in ("requests_per_s", "us_per_request")), "token.requests",
)
RATIOS = ("stream.http_vs_store", "pump.with_vs_no_subscribers", "token.verified_vs_open")
TARGETS = ("stream_throughput", "stream_memory_flat", "subscriber_throughput", "subscriber_latency",
           "subscriber_events", "token_cost")


def pipe_config(pipe_id: str, sink: str, batch: int = BATCH) -> dict[str, Any]:
    """``people`` -> copy everything plus one ``add`` -> ``sink``; manual pump (runs only on start)."""
    return {"_id": pipe_id, "type": "pipe", "source": {"type": "dataset", "dataset": SOURCE},
            "transform": {"type": "dtl", "rules": {"default": [["copy", "*"], ["add", "loud", ["upper", "_S.name"]]]}},
            "sink": {"type": "dataset", "dataset": sink}, "batch_size": batch, "pump": {"mode": "manual"}}


TOKEN_CONFIG = [{"_id": TOKEN_PIPE, "type": "pipe", "pump": {"mode": "manual"},
                 "source": {"type": "embedded", "entities": [{"_id": str(i), "name": f"n{i}"} for i in range(3)]},
                 "sink": {"type": "dataset", "dataset": f"{TOKEN_PIPE}-out"}}]

# -- setup and the store baseline (child processes) ---------------------------------------------------


def setup(root: str, n: int) -> dict[str, Any]:
    """Write ``people`` (N entities, batches of 1000) with the bulk LevelDB profile."""
    started = time.perf_counter()
    dataset = storage.DataDir(root, options=storage.LevelDBOptions.BULK).open_dataset(SOURCE)
    try:
        for start in range(0, n, BATCH):
            dataset.write(storage.parse_json(orjson.dumps(list(_common.entities(min(BATCH, n - start),
                                                                                start=start)))))
        dataset.set_populated(True)
    finally:
        dataset.close()
    return {"n": n, "seconds": time.perf_counter() - started}


def store_read(root: str, small: int) -> dict[str, Any]:
    """The baseline: every stored version of ``people`` straight from the store, joined into the API's JSON
    array 1000 versions at a time (as its ``json_array`` does, without threads and HTTP), with its xxh3 digest.

    Joined per chunk rather than into one array: at 1M entities a whole-array join holds about 0.9 GB (the
    list and the joined copy) and its page faults made the baseline slower than the server it is to bound.
    """
    dataset = storage.DataDir(root).open_dataset(SOURCE, create=False)  # the node profile, as the server
    try:
        freeze_startup()
        start = time.perf_counter()
        whole = _joined(dataset.iter_stored())
        seconds = time.perf_counter() - start
        head = _joined(dataset.iter_stored(limit=small))
    finally:
        dataset.close()
    return {"seconds": seconds, "bytes": whole["bytes"], "digest": whole["digest"], "ids": whole["versions"],
            "small_bytes": head["bytes"], "small_digest": head["digest"], "small_ids": head["versions"]}


def _joined(iterator: Iterator[tuple[int, bytes]], chunk: int = STREAM_CHUNK) -> dict[str, Any]:
    """The JSON array of the stored versions, made ``chunk`` at a time: its size, digest and length."""
    digest = xxhash.xxh3_64()
    size = versions = 0
    prefix = b"["
    while True:
        values = [v for _, v in islice(iterator, chunk)]
        if not values:
            break
        piece = prefix + b",".join(values)
        digest.update(piece)
        size += len(piece)
        versions += len(values)
        prefix = b","
    end = b"[]" if prefix == b"[" else b"]"
    digest.update(end)
    return {"bytes": size + len(end), "digest": digest.hexdigest(), "versions": versions}


def run_phase(phase: str, args: dict[str, Any]) -> dict[str, Any]:
    tune_process()  # as `sesamd serve` does
    if phase == "setup":
        return setup(args["root"], args["n"])
    if phase == "store":
        return store_read(args["root"], args["small"])
    raise ValueError(f"unknown phase {phase!r}")


def run_phase_isolated(phase: str, args: dict[str, Any], timeout: float = 7200) -> dict[str, Any]:
    """Run one phase in a child process (a fresh interpreter)."""
    return _common.run_child([__file__, "--phase", phase, "--phase-args", json.dumps(args)], timeout=timeout)


# -- the server's RSS ----------------------------------------------------------------------------------


class ServerRss:
    """Samples another process's RSS and its anonymous part (RSS - shared) in a daemon thread; keeps the peaks.

    As a context manager: ``before`` is the sample taken on entry, the peaks cover the block.
    """

    def __init__(self, pid: int, interval: float = RSS_INTERVAL) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.before = self.before_anon = self.peak = self.peak_anon = self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="server-rss", daemon=True)

    def sample(self) -> tuple[int, int]:
        info = self.process.memory_info()
        rss, anon = info.rss, info.rss - info.shared
        self.peak, self.peak_anon = max(self.peak, rss), max(self.peak_anon, anon)
        self.samples += 1
        return rss, anon

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(psutil.Error):
                self.sample()

    def __enter__(self) -> ServerRss:
        self.before, self.before_anon = self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(psutil.Error):
            self.sample()

    def figures(self) -> dict[str, int]:
        return {"rss_before": self.before, "rss_peak": self.peak, "rss_growth": self.peak - self.before,
                "rss_anon_before": self.before_anon, "rss_anon_peak": self.peak_anon,
                "rss_anon_growth": self.peak_anon - self.before_anon, "rss_samples": self.samples}


# -- streaming over HTTP ------------------------------------------------------------------------------


class BodyCheck:
    """Counts the bytes and ``"_id":`` keys of a body that arrives in chunks, and its xxh3 digest."""

    def __init__(self) -> None:
        self.bytes = self.ids = 0
        self.first = self.last = b""
        self._tail = b""
        self._hash = xxhash.xxh3_64()

    def update(self, chunk: bytes) -> None:
        if not chunk:
            return
        if not self.first:
            self.first = chunk[:1]
        self.bytes += len(chunk)
        # a key split by the chunk boundary lies within the last 5 bytes before it and the first 5 after
        self.ids += chunk.count(ID_KEY) + (self._tail + chunk[:len(ID_KEY) - 1]).count(ID_KEY)
        self._tail = (self._tail + chunk)[-(len(ID_KEY) - 1):]
        self.last = chunk[-1:]
        self._hash.update(chunk)

    @property
    def digest(self) -> str:
        return self._hash.hexdigest()

    @property
    def is_array(self) -> bool:
        return self.first == b"[" and self.last == b"]"


def http_stream(client: httpx.Client, url: str, pid: int, limit: int | None = None) -> dict[str, Any]:
    """Stream ``GET /datasets/people/entities`` (``limit`` entities, or all), sampling the server's RSS."""
    params = {"limit": str(limit)} if limit is not None else {}
    check = BodyCheck()
    with ServerRss(pid) as rss:
        start = time.perf_counter()
        with client.stream("GET", f"{url}/datasets/{SOURCE}/entities", params=params) as response:
            if response.status_code != 200:
                raise AssertionError(f"GET entities: {response.status_code} {response.read()[:500]!r}")
            for chunk in response.iter_raw():
                check.update(chunk)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "bytes": check.bytes, "ids": check.ids, "digest": check.digest,
            "is_array": check.is_array, **rss.figures()}


def stream_phase(root: str, small: int) -> dict[str, Any]:
    """A ``sesamd serve`` on ``root``: a warm-up stream that opens the dataset, then N/10 and N entities."""
    from sesamd.testing import serve_process

    with serve_process(root) as daemon:
        timeout = httpx.Timeout(600.0, connect=30.0)
        with httpx.Client(headers=daemon.headers, timeout=timeout) as client:
            warm = client.get(f"{daemon.url}/datasets/{SOURCE}/entities", params={"limit": str(WARMUP_STREAM)})
            if warm.status_code != 200:
                raise AssertionError(f"GET entities?limit={WARMUP_STREAM}: {warm.status_code} {warm.text[:500]}")
            head = http_stream(client, daemon.url, daemon.process.pid, limit=small)
            whole = http_stream(client, daemon.url, daemon.process.pid)
        code = daemon.terminate()
    if code != 0:
        raise AssertionError(f"sesamd serve exited with {code}")
    return {"small": head, "whole": whole}


def _check_stream(got: dict[str, Any], n: int, size: int, digest: str, what: str) -> None:
    if not got["is_array"] or got["ids"] != n or got["bytes"] != size or got["digest"] != digest:
        raise AssertionError(f"{what}: the body ({got['bytes']} bytes, {got['ids']} ids, digest {got['digest']}, "
                             f"array: {got['is_array']}) is not the store's ({size} bytes, {n} ids, {digest})")


# -- the pump with and without feed subscribers ---------------------------------------------------------


def _epoch(iso: str) -> float:
    """Seconds since the epoch of the feed's ISO UTC time (``2024-01-31T12:00:00.000000Z``)."""
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def _subscriber_checks(received: list[list[tuple[float, dict[str, Any]]]], processed: int, n: int,
                       batch: int) -> dict[str, Any]:
    """Whether every subscriber got every event: no lagged, the same seqs, dataset-changed events covering
    every batch (a coalesced event counts the ``commits`` it covers)."""
    seqs = [[e["seq"] for _t, e in got] for got in received]
    changed = [[e for _t, e in got if e["type"] == "dataset-changed"] for got in received]
    lagged = sum(1 for got in received for _t, e in got if e["type"] == "lagged")
    batches = math.ceil(processed / batch) if processed else 0
    offsets_ok = all(
        [e["offset"] for e in events] == sorted({e["offset"] for e in events})
        and (not events or events[-1]["offset"] == n - 1) for events in changed)
    completed = all(got and got[-1][1]["type"] == "pump-completed" for got in received)
    return {"subscribers": len(received), "lagged": lagged, "same_seqs": all(s == seqs[0] for s in seqs),
            "events": len(seqs[0]) if seqs else 0, "dataset_changed": sorted({len(c) for c in changed}),
            "commits": sorted({sum(e["commits"] for e in c) for c in changed}), "batches": batches,
            "changed_is_batches": all(sum(e["commits"] for e in c) == batches for c in changed),
            "offsets_rise_to_end": offsets_ok, "completed": completed,
            "ok": bool(received) and lagged == 0 and all(s == seqs[0] for s in seqs) and offsets_ok and completed
            and all(sum(e["commits"] for e in c) == batches for c in changed)}


def _cpu(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of a process so far: all its threads, and its main thread (Trio's)."""
    process = psutil.Process(pid)
    times = process.cpu_times()
    main = next((t for t in process.threads() if t.id == pid), None)
    return times.user + times.system, (main.user_time + main.system_time) if main is not None else 0.0


async def _pump_run(client: httpx.AsyncClient, url: str, ws_url: str, token: str, pipe_id: str, sink: str, n: int,
                    subscribers: int, pid: int, batch: int = BATCH) -> dict[str, Any]:
    """Add the pipe, connect the subscribers, start the pump, wait for the run's end; then remove the pipe."""
    response = await client.post(f"{url}/pipes", json=[pipe_config(pipe_id, sink, batch)])
    if response.status_code != 201:
        raise AssertionError(f"POST /pipes: {response.status_code} {response.text[:500]}")
    clients = FeedClients(ws_url, token, pipe_id, FEED_TYPES, subscribers) if subscribers else None
    try:
        if clients is not None:
            with trio.fail_after(60):
                await trio.to_thread.run_sync(clients.wait_ready, abandon_on_cancel=True)
        cpu_before, bench_before = _cpu(pid), time.process_time()
        clients_before = clients.cpu() if clients is not None else 0.0
        response = await client.post(f"{url}/pipes/{pipe_id}/pump", data={"operation": "start"})
        if response.status_code != 200:
            raise AssertionError(f"start {pipe_id}: {response.status_code} {response.text[:500]}")
        with trio.fail_after(7200):
            while True:
                await trio.sleep(POLL_INTERVAL)
                pump = (await client.get(f"{url}/pipes/{pipe_id}/pump")).json()
                if not pump["runtime"]["is-running"]:
                    break
        cpu_after, bench_after = _cpu(pid), time.process_time()
        clients_cpu = clients.cpu() - clients_before if clients is not None else 0.0
        # the subscribers end at the pump-completed event
        received = await trio.to_thread.run_sync(clients.results, 60) if clients is not None else []
    finally:
        if clients is not None:
            clients.kill()
    log = (await client.get(f"{url}/pipes/{pipe_id}/log", params={"history": "false"})).json()
    ended = next((e for e in log if e["_id"] in ("pump-completed", "pump-failed")), None)
    if ended is None or ended["_id"] != "pump-completed":
        raise AssertionError(f"pipe {pipe_id}: the run did not complete: {ended}")
    sink_json = (await client.get(f"{url}/datasets/{sink}")).json()
    for path in (f"{url}/pipes/{pipe_id}", f"{url}/datasets/{sink}", f"{url}/datasets/system:pump_execution:{pipe_id}"):
        response = await client.delete(path)
        if response.status_code != 200:
            raise AssertionError(f"DELETE {path}: {response.status_code} {response.text[:500]}")
    processed, seconds = ended["entities_succeeded"], ended["total_time"]
    result: dict[str, Any] = {"pipe": pipe_id, "subscribers": subscribers, "processed": processed,
                              "seconds": seconds, "start_time": ended["start_time"], "end_time": ended["end_time"],
                              "sink_entities": sink_json["runtime"]["count-index-exists"],
                              "server_cpu": cpu_after[0] - cpu_before[0],
                              "server_main_cpu": cpu_after[1] - cpu_before[1], "bench_cpu": bench_after - bench_before,
                              "subscribers_cpu": clients_cpu}
    if processed != n or result["sink_entities"] != n:
        raise AssertionError(f"pipe {pipe_id} processed {processed} and its sink holds {result['sink_entities']} "
                             f"entities, expected {n}")
    if subscribers:
        result["checks"] = _subscriber_checks(received, processed, n, batch)
        feed_end = received[0][-1][1]
        result["feed_total_time"] = feed_end.get("total_time")
        stamps: dict[int, float] = {}
        latencies = []
        for got in received:
            for at, event in got:
                if event["type"] == "dataset-changed":
                    stamped = stamps.get(event["seq"])
                    if stamped is None:  # the oldest commit the (coalesced) event covers: the worst case
                        stamped = stamps[event["seq"]] = _epoch(event["first_commit_time"])
                    latencies.append(at - stamped)
        result["latencies"] = latencies
    return result


def pump_phase(root: str, n: int, rounds: int, subscribers: int,
               log: Callable[[str], None]) -> dict[str, list[dict[str, Any]]]:
    """One ``sesamd serve`` on ``root``; per round a run with no subscriber and one with ``subscribers``."""
    from sesamd.testing import serve_process

    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in PUMP_MODES}

    async def main(url: str, ws_url: str, token: str, headers: dict[str, str], pid: int) -> None:
        async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(600.0, connect=30.0)) as client:
            warmup = await _pump_run(client, url, ws_url, token, "feed-warmup", "feed-warmup-out", n, 0, pid)
            log(f"pump warm-up (not counted): {warmup['processed'] / warmup['seconds']:,.0f}/s")
            for r in range(rounds):
                order = PUMP_MODES if r % 2 == 0 else PUMP_MODES[::-1]
                for mode in order:
                    pipe_id = f"feed-r{r}-{'with' if mode == 'with_subscribers' else 'none'}"
                    run = await _pump_run(client, url, ws_url, token, pipe_id, f"{pipe_id}-out", n,
                                          subscribers if mode == "with_subscribers" else 0, pid)
                    runs[mode].append(run)
                log(f"pump round {r + 1}/{rounds}: " + ", ".join(
                    f"{m} {runs[m][-1]['processed'] / runs[m][-1]['seconds']:,.0f}/s (server CPU "
                    f"{runs[m][-1]['server_cpu']:.2f} s, its Trio thread {runs[m][-1]['server_main_cpu']:.2f} s, "
                    f"bench {runs[m][-1]['bench_cpu']:.2f} s, subscribers {runs[m][-1]['subscribers_cpu']:.2f} s)"
                    for m in PUMP_MODES))

    with serve_process(root) as daemon:
        trio.run(main, daemon.url, daemon.ws_url, daemon.token, daemon.headers, daemon.process.pid)
        code = daemon.terminate()
    if code != 0:
        raise AssertionError(f"sesamd serve exited with {code}")
    return runs


# -- the token's cost ---------------------------------------------------------------------------------


def serve_child(root: str, mode: str) -> None:
    """``--serve-child``: a node on ``root`` with a one-pipe config and its API, the guard verifying tokens
    (``verified``) or not (``open``); prints ``serving URL`` when ready, serves until SIGTERM."""
    import logging

    tune_process()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    trio.run(_serve_child, root, mode)


async def _serve_child(root: str, mode: str) -> None:
    import logging

    import hypercorn.config
    import hypercorn.trio

    from sesamd._auth import Authenticator
    from sesamd._node import open_node
    from sesamd.api import create_app
    from sesamd.testing import OpenAuthenticator

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with open_node(root) as node:
            await node.apply_config(TOKEN_CONFIG)
            auth = OpenAuthenticator(root) if mode == "open" else Authenticator(root)
            app = create_app(node, auth=auth)
            config = hypercorn.config.Config()
            config.bind = ["127.0.0.1:0"]
            config.accesslog = None
            config.errorlog = logging.getLogger("hypercorn.error")
            config.graceful_timeout = 5.0
            freeze_startup()
            stop = trio.Event()

            async def run(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
                await hypercorn.trio.serve(app, config, shutdown_trigger=stop.wait, task_status=task_status)

            async with trio.open_nursery() as nursery:
                binds: list[str] = await nursery.start(run)
                print(f"serving {binds[0].rstrip('/')}/api", flush=True)
                async for _signum in signals:
                    break
                stop.set()


@contextlib.contextmanager
def serving_child(root: str, mode: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run ``--serve-child`` (stderr to ``<root>.log``) until the block ends; yields its API URL."""
    from sesamd.testing import started_process

    log = Path(f"{root}.log")
    argv = [sys.executable, __file__, "--serve-child", json.dumps({"root": root, "mode": mode})]
    with started_process(argv, log, "serving ") as (process, line):
        yield line.split()[1], process
        process.send_signal(signal.SIGTERM)
        if process.wait(30) != 0:
            raise AssertionError(f"the {mode} server exited with {process.returncode}:\n{log.read_text()}")


def _timed_requests(client: httpx.Client, path: str, count: int) -> float:
    """Seconds for ``count`` GETs of ``path``, one at a time on the client's keep-alive connection."""
    bad = 0
    start = time.perf_counter()
    for _ in range(count):
        if client.get(path).status_code != 200:
            bad += 1
    seconds = time.perf_counter() - start
    if bad:
        raise AssertionError(f"GET {path}: {bad} of {count} requests failed")
    return seconds


def token_round(roots: dict[str, str], tokens: dict[str, str], requests: int, block: int,
                first: int = 0) -> dict[str, dict[str, Any]]:
    """Both servers at once, each with its own keep-alive client; ``GET /pipes/tiny`` in blocks of ``block``
    requests, the modes taking turns block by block (ABBA order), until each had ``requests``."""
    with contextlib.ExitStack() as stack:
        urls = {m: stack.enter_context(serving_child(roots[m], m))[0] for m in TOKEN_MODES}
        clients = {m: stack.enter_context(httpx.Client(headers={"Authorization": f"Bearer {tokens[m]}"},
                                                       timeout=30.0)) for m in TOKEN_MODES}
        paths = {m: f"{urls[m]}/pipes/{TOKEN_PIPE}" for m in TOKEN_MODES}
        for m in TOKEN_MODES:
            _timed_requests(clients[m], paths[m], WARMUP_REQUESTS)
        seconds = dict.fromkeys(TOKEN_MODES, 0.0)
        blocks = max(1, math.ceil(requests / block))
        for b in range(blocks):
            count = min(block, requests - b * block)
            for mode in (TOKEN_MODES if (b + first) % 4 in (0, 3) else TOKEN_MODES[::-1]):
                seconds[mode] += _timed_requests(clients[mode], paths[mode], count)
        unauthenticated = {m: httpx.get(paths[m], timeout=30.0).status_code for m in TOKEN_MODES}  # no header
    for mode, expected in (("verified", 401), ("open", 200)):
        if unauthenticated[mode] != expected:
            raise AssertionError(f"the {mode} server answered a request without a token with "
                                 f"{unauthenticated[mode]}, expected {expected}")
    return {m: {"seconds": seconds[m], "requests": requests, "blocks": blocks,
                "unauthenticated_status": unauthenticated[m]} for m in TOKEN_MODES}


def token_phase(root: str, rounds: int, requests: int, log: Callable[[str], None],
                block: int = TOKEN_BLOCK) -> dict[str, list[dict[str, Any]]]:
    """Per round a fresh pair of ``--serve-child`` servers (one data directory each, the same config)."""
    from sesamd._auth import Authenticator

    roots = {m: str(Path(root) / m) for m in TOKEN_MODES}
    tokens = {}
    for mode, path in roots.items():
        Path(path).mkdir(parents=True, exist_ok=True)
        tokens[mode] = Authenticator(path).mint("admin", subject="bench-api")  # (the open one ignores it)
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in TOKEN_MODES}
    for r in range(rounds):
        got = token_round(roots, tokens, requests, block, first=r)
        for mode in TOKEN_MODES:
            runs[mode].append(got[mode])
        log(f"token round {r + 1}/{rounds}: " + ", ".join(
            f"{m} {runs[m][-1]['requests'] / runs[m][-1]['seconds']:,.0f} req/s" for m in TOKEN_MODES))
    return runs


# -- the benchmark ------------------------------------------------------------------------------------


def _percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0-1) by the nearest rank of the sorted values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def measure(n: int, *, rounds: int = 3, subscribers: int = SUBSCRIBERS, requests: int = QUICK_REQUESTS,
            isolate: bool = True, scratch: str | None = None,
            log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True)) -> dict[str, Any]:
    """Run the whole benchmark on ``n`` entities; returns the report (``FIGURES``, ``RATIOS``, ``TARGETS``)."""
    started = time.perf_counter()
    small = max(1, n // 10)
    runner = run_phase_isolated if isolate else run_phase
    stream: dict[str, list[dict[str, Any]]] = {"http": [], "store": [], "small": []}
    with _common.scratch_dir("sesamd-bench-api-", parent=scratch) as tmp:
        root = str(tmp / "data")
        setup_result = runner("setup", {"root": root, "n": n})
        log(f"setup: {n:,} entities written in {setup_result['seconds']:.1f} s")
        baseline: dict[str, Any] | None = None
        for r in range(rounds):
            for kind in (("store", "http") if r % 2 == 0 else ("http", "store")):
                if kind == "store":
                    baseline = runner("store", {"root": root, "small": small})
                    stream["store"].append(baseline)
                else:
                    got = stream_phase(root, small)
                    stream["http"].append(got["whole"])
                    stream["small"].append(got["small"])
            assert baseline is not None
            for k, (got, size) in enumerate(((stream["http"][-1], n), (stream["small"][-1], small))):
                _check_stream(got, size, baseline["bytes" if k == 0 else "small_bytes"],
                              baseline["digest" if k == 0 else "small_digest"], f"round {r + 1} stream")
            http = stream["http"][-1]
            log(f"stream round {r + 1}/{rounds}: http {http['bytes'] / http['seconds'] / MB:,.0f} MB/s, store "
                f"{baseline['bytes'] / stream['store'][-1]['seconds'] / MB:,.0f} MB/s, server RSS "
                f"{http['rss_before'] / MB:.0f} -> {http['rss_peak'] / MB:.0f} MB")
        pump = pump_phase(root, n, rounds, subscribers, log)
        token = token_phase(str(tmp / "token"), rounds, requests, log)
    report = build_report(stream, pump, token, setup_result, n=n, small=small, rounds=rounds,
                          subscribers=subscribers, requests=requests)
    report["config"]["wall_seconds"] = time.perf_counter() - started
    return report


def build_report(stream: dict[str, list[dict[str, Any]]], pump: dict[str, list[dict[str, Any]]],
                 token: dict[str, list[dict[str, Any]]], setup_result: dict[str, Any], *, n: int, small: int,
                 rounds: int, subscribers: int, requests: int) -> dict[str, Any]:
    figures: dict[str, Any] = {"setup.seconds": setup_result["seconds"]}
    stats: dict[str, Any] = {}
    size = stream["store"][0]["bytes"]
    figures["stream.entities"], figures["stream.bytes"] = n, size
    for kind in ("http", "store"):
        seconds = stats[f"stream.{kind}"] = _common.summarize([r["seconds"] for r in stream[kind]])
        figures[f"stream.{kind}.seconds"] = seconds.median
        figures[f"stream.{kind}.mb_per_s"] = size / seconds.median / MB
        figures[f"stream.{kind}.entities_per_s"] = n / seconds.median
    worst = max(stream["http"], key=lambda r: r["rss_growth"])  # the worst round
    worst_small = max(stream["small"], key=lambda r: r["rss_growth"])
    for key in ("rss_before", "rss_peak", "rss_growth"):
        figures[f"stream.{key}"] = worst[key]
        figures[f"stream.small.{key}"] = worst_small[key]
    figures["stream.rss_anon_growth"] = max(r["rss_anon_growth"] for r in stream["http"])
    figures["stream.small.rss_anon_growth"] = max(r["rss_anon_growth"] for r in stream["small"])
    figures["stream.small.entities"], figures["stream.small.bytes"] = small, stream["small"][0]["bytes"]
    figures["stream.rss_samples"] = min(r["rss_samples"] for r in stream["http"])

    for mode in PUMP_MODES:
        seconds = stats[f"pump.{mode}"] = _common.summarize([r["seconds"] for r in pump[mode]])
        figures[f"pump.{mode}.seconds"] = seconds.median
        figures[f"pump.{mode}.entities_per_s"] = n / seconds.median
        figures[f"pump.{mode}.processed"] = pump[mode][0]["processed"]
        for figure, key in (("server_cpu_s", "server_cpu"), ("server_trio_cpu_s", "server_main_cpu"),
                            ("bench_cpu_s", "bench_cpu"), ("subscribers_cpu_s", "subscribers_cpu")):
            figures[f"pump.{mode}.{figure}"] = statistics.median(r[key] for r in pump[mode])
    checks = [r["checks"] for r in pump["with_subscribers"]]
    latencies = [x for r in pump["with_subscribers"] for x in r["latencies"]]
    figures["pump.subscribers"] = subscribers
    figures["pump.batches"] = math.ceil(n / BATCH)
    figures["feed.events_per_subscriber"] = statistics.median(c["events"] for c in checks)
    figures["feed.dataset_changed_per_run"] = max(max(c["dataset_changed"]) for c in checks)
    figures["feed.latency_p50_ms"] = _percentile(latencies, 0.50) * 1000
    figures["feed.latency_p99_ms"] = _percentile(latencies, 0.99) * 1000
    figures["feed.latency_max_ms"] = max(latencies) * 1000
    figures["feed.latency_samples"] = len(latencies)
    stats["feed.latency_p99_ms"] = _common.summarize([_percentile(r["latencies"], 0.99) * 1000
                                                      for r in pump["with_subscribers"]])

    for mode in TOKEN_MODES:
        seconds = stats[f"token.{mode}"] = _common.summarize([r["seconds"] for r in token[mode]])
        figures[f"token.{mode}.requests_per_s"] = requests / seconds.median
        figures[f"token.{mode}.us_per_request"] = seconds.median / requests * 1e6
    figures["token.requests"] = requests

    ratios = {
        "stream.http_vs_store": figures["stream.store.seconds"] / figures["stream.http.seconds"],
        "pump.with_vs_no_subscribers": (figures["pump.with_subscribers.entities_per_s"]
                                        / figures["pump.no_subscribers.entities_per_s"]),
        "token.verified_vs_open": figures["token.open.us_per_request"] / figures["token.verified.us_per_request"],
    }
    ratio_rounds = {
        "stream.http_vs_store": [s["seconds"] / h["seconds"] for h, s in zip(stream["http"], stream["store"],
                                                                           strict=True)],
        "pump.with_vs_no_subscribers": [w["processed"] / w["seconds"] / (o["processed"] / o["seconds"]) for w, o in
                                        zip(pump["with_subscribers"], pump["no_subscribers"], strict=True)],
        "token.verified_vs_open": [o["seconds"] / v["seconds"] for v, o in zip(token["verified"], token["open"],
                                                                             strict=True)],
    }
    flat = figures["stream.rss_anon_growth"] - figures["stream.small.rss_anon_growth"]
    failed = [c for c in checks if not c["ok"]]
    targets = {
        "stream_throughput": {"value": ratios["stream.http_vs_store"], "target": STREAM_TARGET,
                              "rule": "HTTP stream MB/s / store read MB/s >= 0.50"},
        "stream_memory_flat": {"value": flat, "target": FLAT_TARGET,
                               "rule": f"server anonymous RSS growth streaming {n:,} minus streaming {small:,} "
                                       "< 16 MB"},
        "subscriber_throughput": {"value": ratios["pump.with_vs_no_subscribers"], "target": SUBSCRIBERS_TARGET,
                                  "rule": f"pump entities/s with {subscribers} subscribers / with none >= 0.90"},
        "subscriber_latency": {"value": figures["feed.latency_p99_ms"], "target": LATENCY_TARGET_MS,
                               "rule": "commit -> subscriber p99 < 100 ms"},
        "subscriber_events": {"value": len(failed), "target": 0,
                              "rule": "runs where a subscriber lagged, saw other seqs than the others, or did not get "
                                      "dataset-changed events covering every batch == 0"},
        "token_cost": {"value": ratios["token.verified_vs_open"], "target": TOKEN_TARGET,
                       "rule": "requests/s verifying the token / open guard >= 0.95"},
    }
    for name, t in targets.items():
        if name in ("stream_memory_flat", "subscriber_latency"):
            t["met"] = bool(t["value"] < t["target"])
        elif name == "subscriber_events":
            t["met"] = t["value"] == 0
        else:
            t["met"] = bool(t["value"] >= t["target"])
    notes = [
        "stream: sesamd serve subprocess, sync httpx client (iter_raw), body checked against the store's bytes "
        "(length, xxh3 digest, '\"_id\":' count) every round; store: Dataset.iter_stored() joined 1000 at a time "
        "into the same array, own process",
        "server RSS: psutil every 50 ms; anon = rss - shared (without mapped LevelDB tables and libraries); "
        "figures of the round with the largest growth",
        "pump: run time = the execution log's pump-completed total_time (start to end of the run), the same for "
        "both modes; the bench polls GET /pipes/{id}/pump every 100 ms in both; server CPU from psutil (process "
        "and main-thread times) from the start request to the poll that saw the run end; one run with no "
        "subscriber warms the server first, not counted; the subscribers: one child process (selectors + wsproto)",
        "token: two --serve-child servers at once (open_node + create_app + Hypercorn's trio worker), a keep-alive "
        "sync httpx client each, one request at a time, turns of 100 requests in ABBA order",
    ]
    return {
        "benchmark": "api",
        "config": {"n": n, "small": small, "rounds": rounds, "subscribers": subscribers, "requests": requests,
                   "batch": BATCH, "warmup_requests": WARMUP_REQUESTS, "rss_interval": RSS_INTERVAL},
        "environment": _common.environment(),
        "figures": figures,
        "ratios": ratios,
        "ratio_rounds": ratio_rounds,
        "targets": targets,
        "stats": stats,
        "checks": {"subscribers": checks,
                   "stream": [{k: r[k] for k in ("bytes", "ids", "digest", "is_array")} for r in stream["http"]],
                   "token_unauthenticated": {m: [r["unauthenticated_status"] for r in token[m]] for m in TOKEN_MODES}},
        "raw": {"stream": stream, "pump": {m: [{k: v for k, v in r.items() if k != "latencies"} for r in pump[m]]
                                           for m in PUMP_MODES}, "token": token},
        "notes": notes,
    }


def format_report(report: dict[str, Any]) -> str:
    f, ratios, targets, stats, cfg = (report[k] for k in ("figures", "ratios", "targets", "stats", "config"))
    n, small, k = cfg["n"], cfg["small"], cfg["subscribers"]

    def met(name: str) -> str:
        return "yes" if targets[name]["met"] else "NO"

    def mb_rate(phase: str) -> str:
        s, size = stats[phase], f["stream.bytes"]
        return f"{size / s['median'] / MB:,.0f} MB/s ({size / s['max'] / MB:,.0f}-{size / s['min'] / MB:,.0f})"

    def rate(phase: str, count: int, unit: str = "/s") -> str:
        s = stats[phase]
        return f"{count / s['median']:,.0f}{unit} ({count / s['max']:,.0f}-{count / s['min']:,.0f})"

    def mem(prefix: str) -> str:
        return (f"{f[f'{prefix}.rss_before'] / MB:.0f} -> {f[f'{prefix}.rss_peak'] / MB:.0f} MB "
                f"(+{f[f'{prefix}.rss_growth'] / MB:.1f}, anon +{f[f'{prefix}.rss_anon_growth'] / MB:.1f})")

    def cpu(mode: str) -> str:
        return f"{f[f'pump.{mode}.server_cpu_s']:.2f} s ({f[f'pump.{mode}.server_trio_cpu_s']:.2f} s)"

    per_round = ", ".join(f"{r:.2f}" for r in report["ratio_rounds"]["pump.with_vs_no_subscribers"])

    lat = stats["feed.latency_p99_ms"]
    rows = [
        [f"GET /datasets/{{id}}/entities, {n:,} entities ({f['stream.bytes'] / MB:,.0f} MB)", mb_rate("stream.http"),
         f"store {mb_rate('stream.store')}", f"{ratios['stream.http_vs_store']:.2f}", f">= {STREAM_TARGET:.2f}",
         met("stream_throughput")],
        [f"server RSS streaming {n:,}: before -> peak", mem("stream"), f"{small:,}: {mem('stream.small')}",
         "", "anon growth within 16 MB", met("stream_memory_flat")],
        [f"pump {n:,} entities with {k} subscribers", rate("pump.with_subscribers", n),
         f"no subscribers {rate('pump.no_subscribers', n)}", f"{ratios['pump.with_vs_no_subscribers']:.2f}",
         f">= {SUBSCRIBERS_TARGET:.2f}", met("subscriber_throughput")],
        ["  the same, per round (pairs run back to back)", per_round, "", "", "", ""],
        ["server CPU per pump run: all threads (its Trio thread)", cpu("with_subscribers"),
         f"no subscribers {cpu('no_subscribers')}", "", "", ""],
        [f"CPU of the {k} subscribers per run (their own process)",
         f"{f['pump.with_subscribers.subscribers_cpu_s']:.2f} s", "", "", "", ""],
        [f"commit -> subscriber ({f['feed.latency_samples']:,} events)",
         f"p99 {f['feed.latency_p99_ms']:.1f} ms (rounds {lat['min']:.1f}-{lat['max']:.1f})",
         f"p50 {f['feed.latency_p50_ms']:.1f} ms, max {f['feed.latency_max_ms']:.1f}", "",
         f"p99 < {LATENCY_TARGET_MS:.0f} ms", met("subscriber_latency")],
        [f"every subscriber got every event ({len(report['checks']['subscribers'])} runs)",
         f"{f['feed.events_per_subscriber']:,.0f} events, {f['feed.dataset_changed_per_run']:,} dataset-changed",
         f"{f['pump.batches']:,} batches", "", "no lagged, same seqs", met("subscriber_events")],
        [f"GET /pipes/{{id}}, {cfg['requests']:,} requests, token verified", rate("token.verified", cfg["requests"]),
         f"open guard {rate('token.open', cfg['requests'])}", f"{ratios['token.verified_vs_open']:.3f}",
         f">= {TOKEN_TARGET:.2f}", met("token_cost")],
    ]
    out = [f"{n:,} entities, batches of {cfg['batch']}, {k} subscribers, median (min-max) of {cfg['rounds']} rounds; "
           "servers in subprocesses, store read in its own process", ""]
    out.append(_common.format_table(("measurement", "figure", "baseline", "ratio", "target", "met?"), rows))
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_N:,} entities instead of {FULL_N:,}")
    ap.add_argument("--n", type=int, default=None, help="entity count (overrides --quick)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--subscribers", type=int, default=SUBSCRIBERS, help=f"feed subscribers (default {SUBSCRIBERS})")
    ap.add_argument("--requests", type=int, default=None,
                    help=f"requests per round of the token loop (default {QUICK_REQUESTS:,} quick, {FULL_REQUESTS:,})")
    ap.add_argument("--json", metavar="OUT", default=None, help="write every figure and ratio to OUT ('-': stdout)")
    ap.add_argument("--dir", default=None, help="parent of the temp dir (default: the system's)")
    ap.add_argument("--in-process", action="store_true", help="run the setup and store phases in this process")
    ap.add_argument("--phase", help=argparse.SUPPRESS)  # internal: run one phase in a child process
    ap.add_argument("--phase-args", help=argparse.SUPPRESS)
    ap.add_argument("--serve-child", metavar="ARGS", help=argparse.SUPPRESS)  # internal: a token-cost server
    args = ap.parse_args(argv)
    if args.serve_child:
        child = json.loads(args.serve_child)
        serve_child(child["root"], child["mode"])
        return 0
    if args.phase:
        print(json.dumps(run_phase(args.phase, json.loads(args.phase_args))))
        return 0
    if args.subscribers < 1:
        ap.error("--subscribers must be at least 1")
    quick = args.quick or (args.n is not None and args.n <= QUICK_N)
    n = args.n or (QUICK_N if args.quick else FULL_N)
    requests = args.requests or (QUICK_REQUESTS if quick else FULL_REQUESTS)
    report = measure(n, rounds=args.rounds, subscribers=args.subscribers, requests=requests,
                     isolate=not args.in_process, scratch=args.dir)
    out = sys.stderr if args.json == "-" else sys.stdout
    print(format_report(report), file=out)
    for note in report["notes"]:
        print(f"note: {note}", file=out)
    print(f"\nwall time {report['config']['wall_seconds']:.0f} s", file=out)
    if args.json:
        _common.write_json(args.json, report)
    return 0 if all(t["met"] for t in report["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
