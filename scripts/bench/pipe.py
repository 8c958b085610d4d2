#!/usr/bin/env python3
"""Benchmark of pipes run by the node's pump against the same storage + compiled DTL loop without actors
(issue 4), each figure beside its baseline measured in the same run.

    .venv/bin/python scripts/bench/pipe.py --quick                   # 100k entities, 3 rounds
    .venv/bin/python scripts/bench/pipe.py --json bench-pipe.json    # 1M entities, 3 rounds
    .venv/bin/python scripts/bench/pipe.py --quick --via thread      # PipeRunner.run() in a worker thread
    .venv/bin/python scripts/bench/pipe.py --quick --profile bulk    # datasets with the bulk LevelDB options
    .venv/bin/python scripts/bench/pipe.py --quick --profile 8/4     # node profile, 8 MiB buffer, 4 MiB cache

Data (written once by a setup child, not timed): ``people``, N entities shaped like the storage
benchmark's (about 320 bytes, 12 properties) plus two join keys, ``account`` (``i mod M``) and
``ledger`` (``i``); ``accounts``, M = N/10 entities keyed by ``number``; ``ledger``, N entities keyed by
``number``. The secondary indexes the joins need (both directions) are built in the setup too, with the
bulk LevelDB profile (``storage.LevelDBOptions.BULK``, as ``sesamd dataset import`` does). The measured
phases, pumps and baselines alike, open the datasets with the node profile (``LevelDBOptions.NODE``,
what ``sesamd serve`` uses by default), or with the one ``--profile`` names.

Measurements, each in a child process of its own (so its peak RSS is its own), round-robin per round,
with the pump and its baseline alternating which goes first:

``flat.pump``
    The pipe ``people`` -> ten-function DTL (``upper``, ``lower``, ``concat``, ``if``/``eq``, ``map``/
    ``first``, ``sum``, ``count``, ``filter``/``gt``, ``datetime-format``, ``coalesce``) -> a fresh
    dataset, run by the node's pump (``sesamd._node.open_node``, the ``PipeActor`` running the
    ``PipeRunner`` in a worker thread of the Trio run, as ``sesamd serve`` does): timed from the ``start``
    operation to the ``pump-completed`` event. ``--via thread`` instead times ``PipeRunner.run()`` in
    ``trio.to_thread.run_sync`` (no node, no actor).
``flat.baseline``
    The same storage + compiled DTL loop without actors: ``Dataset.iter_stored`` (latest versions, as the
    dataset source reads), ``storage.loads``, ``storage.decode``, ``dtl.compile_transform(...).run``,
    ``storage.encode``, ``Dataset.write`` into a fresh dataset, in batches of the same size.
``hop.pump`` / ``hop.baseline``
    The same with one more ``add`` that ``hops`` into ``accounts`` (M entities) joined on
    ``_S.account`` = ``a.number``, through the storage lookup (``Datasets.lookup``) in both.
``small.pump`` / ``small.baseline``
    The flat pipe and loop with Sesam's default ``batch_size`` of 100 (whatever ``--batch`` says): the
    pump's cost per batch (hand-offs between stages and threads) shows here.
``deps``
    Dependency tracking: the pipe ``people`` -> the flat DTL plus a ``hops`` into ``ledger`` (N
    entities), run by the pump. After an initial full run (not timed): a full re-run (``kind: full``)
    is timed, and then, several times, one ``ledger`` entity is changed and the time from the change (the
    write) to the dependent pipe's commit (the ``pump-completed`` event of an incremental run, which
    reprocesses only the affected source entity) is timed. Checked: the incremental run changed exactly
    one entity and the sink has the new value.

Targets: pump throughput >= 80 % of its baseline (flat, hop and small); full re-run time / incremental time
>= 1000; peak RSS of a process pumping N entities < 300 MB (the pump children's peak RSS, whole process).
Median of ``--rounds`` rounds (default 3). Every measured child tunes its process as ``sesamd serve``
does (``sesamd._process``: two malloc arenas, a raised garbage-collector threshold, start-up objects frozen
before the timed part), the pump and its baseline alike; the collector stays on.

Memory, per child: ``peak_rss`` is the kernel's peak of the whole resident set (``ru_maxrss``, the target's
figure); ``peak_rss_anon`` and ``peak_rss_file`` are the peaks of its anonymous part (heap: Python
objects, LevelDB memtables and block caches) and its file-backed part (LevelDB's memory-mapped table files,
shared libraries; the kernel can drop these pages), sampled from ``/proc/self/status`` (``RssAnon``,
``RssFile``) every 20 ms in a thread while the phase runs. The two peaks need not coincide.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import _common  # before the project's packages: it puts the project root first on sys.path
import orjson
import trio
import trio.testing

import dtl
import storage
from sesamd._process import freeze_startup, tune_process

QUICK_N = 100_000
FULL_N = 1_000_000
BATCH = _common.BATCH  # the pipes' batch_size and the baseline's batch
THROUGHPUT_TARGET = 0.80  # pump entities/s / baseline entities/s
DEPS_TARGET = 1000.0  # full re-run seconds / incremental seconds
MEMORY_TARGET = 300_000_000  # bytes: peak RSS of a process pumping N entities
DEP_CHANGES = 5  # single-entity changes timed per round
MB = 1_000_000

SOURCE, ACCOUNTS, LEDGER = "people", "accounts", "ledger"
WORKLOADS = ("flat", "hop", "small")
SMALL_BATCH = 100  # Sesam's default batch_size: the "small" workload is the flat pipe with it
KINDS = ("pump", "baseline")
PHASES = tuple(f"{w}.{k}" for w in WORKLOADS for k in KINDS)

# every named figure, ratio and target of the JSON output (the tests check them)
FIGURES = (
    *(f"{p}.{f}" for p in PHASES for f in ("entities_per_s", "us_per_entity", "seconds", "rss_before", "peak_rss",
                                            "peak_rss_anon", "peak_rss_file")),
    "deps.full.seconds", "deps.full.entities_per_s", "deps.incremental.seconds", "deps.incremental.run_seconds",
    "deps.peak_rss", "deps.peak_rss_anon", "deps.peak_rss_file", "setup.seconds",
)
PROFILES = {"node": storage.LevelDBOptions.NODE, "bulk": storage.LevelDBOptions.BULK}


def dataset_options(profile: str) -> storage.LevelDBOptions:
    """``node``, ``bulk``, or ``W/C``: the node profile with a W MiB write buffer and a C MiB cache."""
    if profile in PROFILES:
        return PROFILES[profile]
    try:
        write_buffer, cache = (int(part) for part in profile.split("/"))
        return storage.LevelDBOptions.NODE.replace(write_buffer_size=write_buffer << 20, lru_cache_size=cache << 20)
    except ValueError:
        raise ValueError(f"unknown LevelDB profile {profile!r}: use node, bulk or W/C (MiB)") from None
RATIOS = ("flat.pump_vs_baseline", "hop.pump_vs_baseline", "deps.full_vs_incremental")
TARGETS = ("flat_throughput", "hop_throughput", "small_throughput", "deps_ratio", "pump_memory")

# -- the pipes ----------------------------------------------------------------------------------------

FLAT_RULES: list[Any] = [
    ["copy", "_id"],
    ["add", "type", "customer"],
    ["add", "name", ["upper", "_S.name"]],
    ["add", "contact", ["concat", ["list", "_S.name", " <", ["lower", "_S.email"], ">"]]],
    ["add", "status", ["if", ["eq", "_S.active", True], "active", "inactive"]],
    ["add", "city", ["first", ["map", "_.city", "_S.addresses"]]],
    ["add", "order_total", ["sum", "_S.orders"]],
    ["add", "order_count", ["count", "_S.orders"]],
    ["add", "big_orders", ["filter", ["gt", "_.", 500000], "_S.orders"]],
    ["add", "year", ["datetime-format", "%Y", "_S.created"]],
    ["add", "segment", ["coalesce", ["list", "_S.segment", "~:crm:segment-none"]]],
    ["copy", "balance"],
]
HOP_RULE = ["add", "tier", ["path", "tier", ["hops", {"datasets": [f"{ACCOUNTS} a"],
                                                      "where": [["eq", "_S.account", "a.number"]]}]]]
LEDGER_RULE = ["add", "ledger_amount", ["path", "amount", ["hops", {"datasets": [f"{LEDGER} l"],
                                                                    "where": [["eq", "_S.ledger", "l.number"]]}]]]


def transform(workload: str) -> dict[str, Any]:
    """The DTL transform config of a workload: ``flat``, ``hop`` or ``deps``."""
    extra = {"flat": [], "small": [], "hop": [HOP_RULE], "deps": [LEDGER_RULE]}[workload]
    return {"type": "dtl", "rules": {"default": json.loads(json.dumps(FLAT_RULES + extra))}}


def pipe_config(pipe_id: str, workload: str, sink: str, batch: int = BATCH) -> dict[str, Any]:
    """A pipe from ``people`` through the workload's DTL into ``sink``; manual pump (runs only on start)."""
    return {"_id": pipe_id, "type": "pipe", "source": {"type": "dataset", "dataset": SOURCE},
            "transform": transform(workload), "sink": {"type": "dataset", "dataset": sink},
            "batch_size": batch, "pump": {"mode": "manual"}}


# -- data ---------------------------------------------------------------------------------------------

_TIERS = ("bronze", "silver", "gold", "platinum")


def person_batches(n: int, m: int, batch: int = BATCH) -> Any:
    """The ``people`` entities in wire form, ``batch`` at a time."""
    for start in range(0, n, batch):
        chunk = list(_common.entities(min(batch, n - start), start=start))
        for i, entity in enumerate(chunk, start):
            entity["account"] = f"A{i % m:07d}"
            entity["ledger"] = f"L{i:09d}"
        yield storage.parse_json(orjson.dumps(chunk))


def account(k: int) -> dict[str, Any]:
    return {"_id": f"account-{k:07d}", "number": f"A{k:07d}", "tier": _TIERS[k % 4], "credit": k * 13 % 100_000}


def ledger_entry(i: int, amount: int | None = None) -> dict[str, Any]:
    return {"_id": f"ledger-{i:09d}", "number": f"L{i:09d}", "currency": "NOK",
            "amount": i * 7 % 100_000 if amount is None else amount}


def setup(root: str, n: int, m: int) -> dict[str, Any]:
    """Write the three datasets and build the join indexes (both directions) of the hop and deps pipes."""
    from actors import Datasets, build_runner

    started = time.perf_counter()
    datasets = Datasets(storage.DataDir(root, options=storage.LevelDBOptions.BULK))  # a bulk load
    with datasets.writing(SOURCE) as people:
        for batch in person_batches(n, m):
            people.write(batch)
        people.set_populated(True)
    with datasets.writing(ACCOUNTS) as accounts:
        for s in range(0, m, BATCH):
            accounts.write([account(k) for k in range(s, min(m, s + BATCH))])
        accounts.set_populated(True)
    with datasets.writing(LEDGER) as ledger:
        for s in range(0, n, BATCH):
            ledger.write([ledger_entry(i) for i in range(s, min(n, s + BATCH))])
        ledger.set_populated(True)
    written = time.perf_counter()
    indexes = []
    for workload in ("hop", "deps"):
        runner = build_runner(pipe_config("setup", workload, "setup-out"), datasets)
        for plan in runner.plans:
            for name, expressions in plan.indexes().items():
                for expression in expressions:
                    datasets.ensure_index(name or SOURCE, expression)
                    indexes.append(f"{name or SOURCE}: {expression.key}")
    datasets.close_all()
    return {"n": n, "m": m, "write_seconds": written - started, "index_seconds": time.perf_counter() - written,
            "seconds": time.perf_counter() - started, "indexes": indexes}


# -- the phases (each runs in a child process; they return plain dicts) --------------------------------


class RssSampler:
    """Samples ``RssAnon`` and ``RssFile`` of ``/proc/self/status`` in a daemon thread and keeps their peaks.

    Use as a context manager; outside Linux the peaks stay 0.
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak_anon = self.peak_file = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def sample(self) -> tuple[int, int]:
        """The anonymous and file-backed resident set sizes now, in bytes (and update the peaks)."""
        anon = file = 0
        try:
            with open("/proc/self/status", "rb") as f:
                for line in f:
                    if line.startswith(b"RssAnon:"):
                        anon = int(line.split()[1]) * 1024
                    elif line.startswith(b"RssFile:"):
                        file = int(line.split()[1]) * 1024
        except OSError:
            return 0, 0
        self.peak_anon = max(self.peak_anon, anon)
        self.peak_file = max(self.peak_file, file)
        return anon, file

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def peaks(self) -> dict[str, int]:
        return {"peak_rss_anon": self.peak_anon, "peak_rss_file": self.peak_file}


def _result(seconds: float, n: int, rss_before: int, **extra: Any) -> dict[str, Any]:
    return {"seconds": seconds, "n": n, "rss_before": rss_before, "peak_rss": _common.peak_rss(), **extra}


def _datasets(root: str, profile: str) -> Any:
    """The storage of a measured phase: ``root``'s datasets opened with the profile's LevelDB options."""
    from actors import Datasets

    return Datasets(storage.DataDir(root, options=dataset_options(profile)))


def baseline(root: str, workload: str, sink_name: str, batch_size: int = BATCH,
             profile: str = "node") -> dict[str, Any]:
    """Storage + compiled DTL without actors: iter_stored, loads, decode, run, encode, write."""
    datasets = _datasets(root, profile)
    source = datasets.open(SOURCE, create=False)
    sink = datasets.open(sink_name)
    compiled = dtl.compile_transform(transform(workload))
    lookup = datasets.lookup
    loads, decode, encode = storage.loads, storage.decode, storage.encode
    run, write = compiled.run, sink.write
    freeze_startup()
    rss_before = _common.rss()[0]
    n = written = 0
    start = time.perf_counter()
    batch: list[Any] = []
    for _seq, stored in source.iter_stored(None, history=False, deleted=True):
        batch.append(decode(loads(stored)))
        if len(batch) >= batch_size:
            written += write([encode(e) for e in run(batch, lookup=lookup)]).appended
            n += len(batch)
            batch = []
    if batch:
        written += write([encode(e) for e in run(batch, lookup=lookup)]).appended
        n += len(batch)
    seconds = time.perf_counter() - start
    result = _result(seconds, n, rss_before, changes=written)
    datasets.delete(sink_name)
    datasets.close_all()
    return result


async def _apply(node: Any, config: list[dict[str, Any]]) -> None:
    """Upload a config and wait until the new pumps are up.

    ``apply_config`` returns before the supervisor has entered the new actors' ``run``; a ``start`` right
    after it fails with "not running (it is restarting)". Waiting until every task is blocked lets them in.
    """
    await node.apply_config(config)
    await trio.testing.wait_all_tasks_blocked()


async def _pump_run(node: Any, pipe_id: str, kind: str) -> dict[str, Any]:
    """Start a run through the node's pump operation and wait for its pump-completed (or -failed) event."""
    with node.events.subscribe(maxsize=100, filter={"pipe": pipe_id,
                                                    "type": ("pump-completed", "pump-failed")}) as events:
        await node.operate(pipe_id, "start", {"kind": kind} if kind == "full" else {})
        event = await events.receive()
    if event["type"] != "pump-completed":
        raise RuntimeError(f"pipe {pipe_id}: {event.get('reason_why_stopped')}\n{event.get('traceback')}")
    return event


async def _thread_run(runner: Any, kind: str) -> dict[str, Any]:
    """PipeRunner.run() in a worker thread of this Trio run (no node, no actor)."""
    result = await trio.to_thread.run_sync(lambda: runner.run(kind=kind))
    return {"type": "run", "processed": result.processed, "changes": result.changes,
            "dependencies": result.dependencies, "sync_type": result.sync_type}


def pump(root: str, workload: str, sink_name: str, via: str = "node", batch_size: int = BATCH,
         profile: str = "node") -> dict[str, Any]:
    """The pipe ``people`` -> DTL -> ``sink_name``, one full run through the pump (or a worker thread)."""
    pipe_id = f"bench-{sink_name}"
    config = pipe_config(pipe_id, workload, sink_name, batch_size)

    async def main() -> dict[str, Any]:
        if via == "thread":
            from actors import build_runner

            datasets = _datasets(root, profile)
            runner = build_runner(config, datasets)
            freeze_startup()
            rss_before = _common.rss()[0]
            start = time.perf_counter()
            event = await _thread_run(runner, "full")
            seconds = time.perf_counter() - start
            result = _result(seconds, event["processed"], rss_before, changes=event["changes"])
            datasets.delete(sink_name)
            datasets.close_all()
            return result
        from sesamd._node import open_node

        async with open_node(root, dataset_options=dataset_options(profile)) as node:
            await _apply(node, [config])
            freeze_startup()
            rss_before = _common.rss()[0]
            start = time.perf_counter()
            event = await _pump_run(node, pipe_id, "full")
            seconds = time.perf_counter() - start
            result = _result(seconds, event["processed"], rss_before, changes=event["changes"],
                             run_total_time=event.get("total_time"), metrics=event.get("metrics"))
            await _apply(node, [])
            for name in (sink_name, f"system:pump_execution:{pipe_id}"):
                await trio.to_thread.run_sync(node.datasets.delete, name)
        return result

    return trio.run(main)


def deps(root: str, n: int, rounds: int, via: str = "node", changes: int = DEP_CHANGES,
         profile: str = "node") -> dict[str, Any]:
    """Dependency tracking: full re-runs vs one changed ``ledger`` entity -> incremental run -> commit."""
    sink_name = "deps-out"
    pipe_id = f"bench-{sink_name}"
    config = pipe_config(pipe_id, "deps", sink_name)

    async def main() -> dict[str, Any]:
        full_seconds: list[float] = []
        incremental: list[float] = []
        run_seconds: list[float] = []
        checks: list[dict[str, Any]] = []
        if via == "thread":
            from actors import build_runner

            datasets = _datasets(root, profile)
            runner = build_runner(config, datasets)

            async def run(kind: str) -> dict[str, Any]:
                return await _thread_run(runner, kind)

            node = None
        else:
            from sesamd._node import open_node

            node_cm = open_node(root, dataset_options=dataset_options(profile))
            node = await node_cm.__aenter__()
            await _apply(node, [config])
            datasets = node.datasets

            async def run(kind: str) -> dict[str, Any]:
                return await _pump_run(node, pipe_id, kind)

        try:
            first = await run("full")  # the initial run: builds the sink (not timed)
            if first["changes"] != n:
                raise AssertionError(f"deps: the initial run wrote {first['changes']} entities, expected {n}")
            step = 0
            for _r in range(rounds):
                freeze_startup()
                start = time.perf_counter()
                event = await run("full")
                full_seconds.append(time.perf_counter() - start)
                if event["processed"] != n:
                    raise AssertionError(f"deps: a full re-run processed {event['processed']} entities, expected {n}")
                for _c in range(changes):
                    step += 1
                    i = (step * 7919) % n
                    amount = 1_000_000 + step  # never the generated value: always a change
                    entry = ledger_entry(i, amount)

                    def change(entry: dict[str, Any] = entry) -> int:
                        with datasets.writing(LEDGER) as ledger:
                            return ledger.write([entry]).appended

                    freeze_startup()
                    start = time.perf_counter()
                    appended = await trio.to_thread.run_sync(change)
                    event = await run("auto")
                    incremental.append(time.perf_counter() - start)
                    if event.get("total_time") is not None:
                        run_seconds.append(event["total_time"])
                    person = f"crm:customer-{i:09d}"
                    out = await trio.to_thread.run_sync(lambda p=person: datasets.get(sink_name).get(p))
                    check = {"appended": appended, "sync_type": event.get("sync_type"),
                             "processed": event["processed"], "changes": event["changes"],
                             "sink_value": None if out is None else out.get("ledger_amount")}
                    checks.append(check)
                    if appended != 1 or event["changes"] != 1 or check["sink_value"] != [amount] \
                            or event.get("sync_type", "incremental") != "incremental":
                        raise AssertionError(f"deps: the change of ledger {i} did not reach the sink as one "
                                             f"change: {check}")
        finally:
            if node is not None:
                await _apply(node, [])
                for name in (sink_name, f"system:pump_execution:{pipe_id}"):
                    await trio.to_thread.run_sync(node.datasets.delete, name)
                await node_cm.__aexit__(None, None, None)
            else:
                datasets.delete(sink_name)
                datasets.close_all()
        return {"n": n, "full_seconds": full_seconds, "incremental_seconds": incremental,
                "run_seconds": run_seconds, "checks": checks, "peak_rss": _common.peak_rss()}

    return trio.run(main)


def run_phase(phase: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run one phase in this process, sampling its anonymous and file-backed RSS."""
    with RssSampler() as sampler:
        result = _run_phase(phase, args)
    return {**result, **sampler.peaks()}


def batch_of(workload: str, args: dict[str, Any]) -> int:
    """The batch size of a workload's pipe and baseline: ``--batch`` (1000), or 100 for ``small``."""
    return SMALL_BATCH if workload == "small" else int(args.get("batch", BATCH))


def _run_phase(phase: str, args: dict[str, Any]) -> dict[str, Any]:
    root, profile = args["root"], args.get("profile", "node")
    if phase == "setup":
        return setup(root, args["n"], args["m"])
    if phase == "deps":
        tune_process()
        return deps(root, args["n"], args["rounds"], args.get("via", "node"), args.get("changes", DEP_CHANGES),
                    profile)
    workload, kind = phase.split(".")
    tune_process()  # as `sesamd serve` does, for the pump and its baseline alike
    if kind == "pump":
        return pump(root, workload, args["sink"], args.get("via", "node"), batch_of(workload, args), profile)
    if kind == "baseline":
        return baseline(root, workload, args["sink"], batch_of(workload, args), profile)
    raise ValueError(f"unknown phase {phase!r}")


def run_phase_isolated(phase: str, args: dict[str, Any], timeout: float = 7200) -> dict[str, Any]:
    """Run one phase in a child process (a fresh interpreter: its peak RSS is the phase's own)."""
    return _common.run_child([__file__, "--phase", phase, "--phase-args", json.dumps(args)], timeout=timeout)


# -- the benchmark ------------------------------------------------------------------------------------


def measure(n: int, *, rounds: int = 3, via: str = "node", isolate: bool = True, scratch: str | None = None,
            changes: int = DEP_CHANGES, batch: int = BATCH, profile: str = "node",
            log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True)) -> dict[str, Any]:
    """Run the whole benchmark on ``n`` source entities; returns the report (``FIGURES``, ``RATIOS``...)."""
    started = time.perf_counter()
    m = max(1, n // 10)
    runner = run_phase_isolated if isolate else run_phase
    raw: dict[str, list[dict[str, Any]]] = {p: [] for p in PHASES}
    with _common.scratch_dir("sesamd-bench-pipe-", parent=scratch) as tmp:
        root = str(tmp / "data")
        common = {"root": root, "n": n, "m": m, "via": via, "batch": batch, "profile": profile}
        setup_result = runner("setup", common)
        log(f"setup: {n:,} people, {m:,} accounts, {n:,} ledger entries written in "
            f"{setup_result['write_seconds']:.1f} s, join indexes built in {setup_result['index_seconds']:.1f} s")
        for r in range(rounds):
            for workload in WORKLOADS:
                order = KINDS if r % 2 == 0 else KINDS[::-1]
                for kind in order:
                    phase = f"{workload}.{kind}"
                    result = runner(phase, {**common, "sink": f"{workload}-{kind}-r{r}"})
                    if result["n"] != n or result["changes"] != n:
                        raise AssertionError(f"{phase}: processed {result['n']} and wrote {result['changes']} "
                                             f"entities, expected {n}")
                    raw[phase].append(result)
            log(f"round {r + 1}/{rounds} at {time.perf_counter() - started:.0f} s: " + ", ".join(
                f"{p} {n / raw[p][-1]['seconds']:,.0f}/s" for p in PHASES))
        dep = runner("deps", {**common, "rounds": rounds, "changes": changes})
        log(f"deps: full re-runs {', '.join(f'{s:.2f}' for s in dep['full_seconds'])} s; change -> commit "
            f"median {_common.summarize(dep['incremental_seconds']).median * 1000:.1f} ms "
            f"({len(dep['incremental_seconds'])} changes)")
    report = build_report(raw, dep, setup_result, n=n, m=m, rounds=rounds, via=via, batch=batch, profile=profile)
    report["config"]["wall_seconds"] = time.perf_counter() - started
    return report


def build_report(raw: dict[str, list[dict[str, Any]]], dep: dict[str, Any], setup_result: dict[str, Any], *,
                 n: int, m: int, rounds: int, via: str, batch: int, profile: str = "node") -> dict[str, Any]:
    figures: dict[str, Any] = {}
    stats: dict[str, Any] = {}
    for phase in PHASES:
        seconds = _common.summarize([r["seconds"] for r in raw[phase]])
        stats[phase] = seconds
        figures[f"{phase}.seconds"] = seconds.median
        figures[f"{phase}.entities_per_s"] = n / seconds.median
        figures[f"{phase}.us_per_entity"] = seconds.median / n * 1e6
        figures[f"{phase}.rss_before"] = max(r["rss_before"] for r in raw[phase])  # the worst round
        for figure in ("peak_rss", "peak_rss_anon", "peak_rss_file"):
            figures[f"{phase}.{figure}"] = max(r[figure] for r in raw[phase])
    full = _common.summarize(dep["full_seconds"])
    incremental = _common.summarize(dep["incremental_seconds"])
    stats["deps.full"], stats["deps.incremental"] = full, incremental
    figures["deps.full.seconds"] = full.median
    figures["deps.full.entities_per_s"] = n / full.median
    figures["deps.incremental.seconds"] = incremental.median
    figures["deps.incremental.run_seconds"] = (_common.summarize(dep["run_seconds"]).median
                                               if dep["run_seconds"] else None)
    for figure in ("peak_rss", "peak_rss_anon", "peak_rss_file"):
        figures[f"deps.{figure}"] = dep[figure]
    figures["setup.seconds"] = setup_result["seconds"]

    ratios = {f"{w}.pump_vs_baseline": figures[f"{w}.pump.entities_per_s"] / figures[f"{w}.baseline.entities_per_s"]
              for w in WORKLOADS}
    ratios["deps.full_vs_incremental"] = full.median / incremental.median
    ratio_rounds = {f"{w}.pump_vs_baseline": [b["seconds"] / p["seconds"] for p, b in
                                              zip(raw[f"{w}.pump"], raw[f"{w}.baseline"], strict=True)]
                    for w in WORKLOADS}
    memory = max(figures[f"{w}.pump.peak_rss"] for w in WORKLOADS)
    targets = {
        "flat_throughput": {"value": ratios["flat.pump_vs_baseline"], "target": THROUGHPUT_TARGET,
                            "rule": "flat pump entities/s / baseline entities/s >= 0.80"},
        "small_throughput": {"value": ratios["small.pump_vs_baseline"], "target": THROUGHPUT_TARGET,
                             "rule": f"flat with batch_size {SMALL_BATCH}: pump entities/s / baseline entities/s "
                                     ">= 0.80"},
        "hop_throughput": {"value": ratios["hop.pump_vs_baseline"], "target": THROUGHPUT_TARGET,
                           "rule": "hop pump entities/s / baseline entities/s >= 0.80"},
        "deps_ratio": {"value": ratios["deps.full_vs_incremental"], "target": DEPS_TARGET,
                       "rule": "full re-run seconds / (change -> commit seconds) >= 1000"},
        "pump_memory": {"value": memory, "target": MEMORY_TARGET,
                        "rule": "peak RSS of the pump processes (flat, hop, small) < 300 MB"},
    }
    for name, t in targets.items():
        t["met"] = bool(t["value"] < t["target"]) if name == "pump_memory" else bool(t["value"] >= t["target"])
    notes = []
    if via == "thread":
        notes.append("pump rows: PipeRunner.run() in trio.to_thread.run_sync, not the node's PipeActor")
    else:
        notes.append("pump rows: sesamd._node.open_node + the 'start' pump operation, timed to the "
                     "pump-completed event (includes the execution-log write)")
    notes.append("deps change -> commit: the ledger write, then a 'start' operation (manual pump), timed to "
                 "the pump-completed event; the node does not signal pumps on writes that are not pipe runs")
    return {
        "benchmark": "pipe",
        "config": {"n": n, "m": m, "rounds": rounds, "batch": batch, "via": via, "profile": profile,
                   "dataset_options": dataset_options(profile).plyvel_kwargs(),
                   "dep_changes_per_round": len(dep["incremental_seconds"]) // max(1, rounds)},
        "environment": _common.environment(),
        "figures": figures,
        "ratios": ratios,
        "ratio_rounds": ratio_rounds,
        "targets": targets,
        "stats": stats,
        "checks": {"deps": dep["checks"], "setup_indexes": setup_result["indexes"]},
        "raw": {p: [{k: v for k, v in r.items() if k != "metrics"} for r in raw[p]] for p in PHASES},
        "metrics": {p: [r.get("metrics") for r in raw[p]] for p in PHASES if p.endswith("pump")},
        "notes": notes,
    }


_LABELS = {
    "flat.baseline": "flat 10-function DTL: storage+DTL loop (baseline)",
    "flat.pump": "flat 10-function DTL: pump",
    "hop.baseline": "+1 hop into {m:,}: storage+DTL loop (baseline)",
    "hop.pump": "+1 hop into {m:,}: pump",
    "small.baseline": "flat, batch_size 100: storage+DTL loop (baseline)",
    "small.pump": "flat, batch_size 100: pump",
}


def format_report(report: dict[str, Any]) -> str:
    f, ratios, targets, stats = report["figures"], report["ratios"], report["targets"], report["stats"]
    cfg = report["config"]
    n, m = cfg["n"], cfg["m"]

    def met(name: str) -> str:
        return "yes" if targets[name]["met"] else "NO"

    def rate(phase: str) -> str:
        s = stats[phase]
        return f"{n / s['median']:,.0f}/s ({n / s['max'] / 1000:,.0f}k-{n / s['min'] / 1000:,.0f}k)"

    pump_label = "pump" if cfg["via"] == "node" else "PipeRunner in worker thread (no node)"
    rows = []
    for w in WORKLOADS:
        rows.append([_LABELS[f"{w}.baseline"].format(m=m), rate(f"{w}.baseline"), "1.00 (baseline)", "", ""])
        rows.append([_LABELS[f"{w}.pump"].format(m=m).replace("pump", pump_label), rate(f"{w}.pump"),
                     f"{ratios[f'{w}.pump_vs_baseline']:.2f}", f">= {THROUGHPUT_TARGET:.2f}",
                     met(f"{w}_throughput")])
    full, inc = stats["deps.full"], stats["deps.incremental"]
    rows.append([f"deps: full re-run, {n:,} entities (baseline)",
                 f"{full['median']:.2f} s ({full['min']:.2f}-{full['max']:.2f})", "1 (baseline)", "", ""])
    rows.append([f"deps: 1 ledger change -> commit (of {n:,})",
                 f"{inc['median'] * 1000:.1f} ms ({inc['min'] * 1000:.1f}-{inc['max'] * 1000:.1f})",
                 f"{ratios['deps.full_vs_incremental']:,.0f}x faster", f">= {DEPS_TARGET:,.0f}x", met("deps_ratio")])
    def memory(phase: str) -> str:
        return (f"{f[f'{phase}.peak_rss'] / MB:.0f} MB (anon {f[f'{phase}.peak_rss_anon'] / MB:.0f}, "
                f"file {f[f'{phase}.peak_rss_file'] / MB:.0f})")

    for w in WORKLOADS:
        rows.append([f"peak RSS pumping {n:,} ({w})", memory(f"{w}.pump"), f"baseline {memory(f'{w}.baseline')}",
                     f"< {MEMORY_TARGET / MB:.0f} MB", "yes" if f[f"{w}.pump.peak_rss"] < MEMORY_TARGET else "NO"])
    options = storage.LevelDBOptions(**cfg["dataset_options"])
    out = [f"{n:,} source entities, batches of {cfg['batch']}, median (min-max) of {cfg['rounds']} rounds, "
           f"each phase in its own process; datasets: {cfg['profile']} profile ({options.describe()}); "
           f"peak RSS: total (anon, file), each the peak of the worst round", ""]
    out.append(_common.format_table(("measurement", "entities/s or time", "ratio", "target", "met?"), rows))
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_N:,} entities instead of {FULL_N:,}")
    ap.add_argument("--n", type=int, default=None, help="source entity count (overrides --quick)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", metavar="OUT", default=None, help="write every figure and ratio to OUT ('-': stdout)")
    ap.add_argument("--via", choices=("node", "thread"), default="node",
                    help="run the pipes through the node's pump (default) or PipeRunner.run() in a worker thread")
    ap.add_argument("--batch", type=int, default=BATCH, help="the pipes' batch_size and the baseline's batch")
    ap.add_argument("--profile", default="node", metavar="node|bulk|W/C",
                    help="the LevelDB options the measured phases open datasets with: a profile (default: node, "
                         "as sesamd serve does) or W/C, the node profile with a W MiB write buffer and a C MiB cache")
    ap.add_argument("--changes", type=int, default=DEP_CHANGES, help="single-entity changes timed per round")
    ap.add_argument("--dir", default=None, help="parent of the temp dir (default: the system's)")
    ap.add_argument("--in-process", action="store_true", help="run the phases in this process (RSS is shared)")
    ap.add_argument("--phase", help=argparse.SUPPRESS)  # internal: run one phase in a child process
    ap.add_argument("--phase-args", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    try:
        dataset_options(args.profile)
    except ValueError as exc:
        ap.error(str(exc))
    if args.phase:
        print(json.dumps(run_phase(args.phase, json.loads(args.phase_args))))
        return 0
    n = args.n or (QUICK_N if args.quick else FULL_N)
    report = measure(n, rounds=args.rounds, via=args.via, isolate=not args.in_process, scratch=args.dir,
                     changes=args.changes, batch=args.batch, profile=args.profile)
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
