#!/usr/bin/env python3
"""Benchmark of the dataset store (``storage.Dataset``) against a raw plyvel baseline, in one run.

    .venv/bin/python scripts/bench/storage.py --quick              # 100k entities, 3 rounds, ~20 s
    .venv/bin/python scripts/bench/storage.py --json bench-storage.json   # 1M entities, 3 rounds
    .venv/bin/python scripts/bench/storage.py --n 300000 --rounds 5
    SESAMD_BENCH_ROOT=/tmp/proto .venv/bin/python scripts/bench/storage.py --quick  # a copy's storage/

Data: synthetic entities of about 300 bytes of compact JSON (12 properties with a nested list of
dicts, lists of ints and strings, a decimal as a JSON number, a ``~t`` datetime, a ``~:`` reference),
written once as one 1000-entity JSON array per line. Every phase reads those bodies (bytes) and parses
them with ``storage.parse_json`` inside its timed loop, as a receiver would its POST bodies.

Measurements, each in its own child process (so its peak RSS is its own), round-robin per round:

``raw_fresh_ingest``
    The baseline: parse, canonical bytes (orjson sorted keys), ``xxh3_128``, and one plyvel
    WriteBatch per body with a log entry and an id-index entry per entity (``LevelDBOptions.BULK``,
    the profile the store phases open their dataset with too).
``store_fresh_ingest``
    ``Dataset.write(batch)`` of every body into an empty dataset.
``raw_unchanged_ingest``
    The baseline for re-ingesting the same data: parse, canonical bytes, hash, index get, compare.
``store_unchanged_ingest``
    ``Dataset.write`` of the same bodies again; checked to append nothing.
``raw_export``
    A plyvel iteration of the dataset's log, values joined with commas into a JSON array file.
``store_export``
    ``Dataset.iter_stored(history=False, deleted=False)`` written out the same way (what
    ``sesamd dataset export`` does): the stored bytes, joined with commas.
``store_file_ingest``
    In-process ingest of the import file (the same entities as NDJSON, one per line):
    ``storage.iter_json_entities`` and ``Dataset.write`` in batches of 1000 into an empty dataset.
``import_cli``
    ``sesamd dataset import NAME FILE`` of that file into an empty data directory, timed as a whole process
    (interpreter start, imports, parse, write, close), from a child of the phase's process; its peak RSS
    is the import process's own.
``sqlite_upsert``
    A plain 20-line Python script (:data:`SQLITE_SCRIPT`, standard library only) upserting the same file
    by ``_id`` into one SQLite table in one transaction, also as a whole process. It keeps no history, no
    change detection and no indexes beyond the primary key.

Opening and closing databases is not timed (but for the two whole processes); the garbage collector
stays on. Targets: store fresh ingest at least 70 % of the raw baseline, unchanged re-ingest faster than
fresh, export at least 300k entities/s, ingest memory bounded by the batch size (the peak RSS growth over
the RSS before the loop must stay within LevelDB's fixed buffers, two write buffers and the block cache,
plus a 64 MiB allowance, whatever the entity count), the import command at least 85 % of in-process
ingest of the same file and at least 80 % of the SQLite upsert script. (The import holds the whole file's
new versions in one WriteBatch, for all-or-nothing: its peak RSS, reported, grows with the file.)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _common  # before the project's packages: it puts the project root first on sys.path
import orjson
import plyvel
import xxhash

import storage

# a bulk load: every dataset here is opened with the bulk profile, as ``sesamd dataset import`` does
OPTIONS = storage.LevelDBOptions.BULK
TUNED_OPTIONS = OPTIONS.plyvel_kwargs()

BATCH = _common.BATCH
QUICK_N = 100_000
FULL_N = 1_000_000
EXPORT_TARGET = 300_000  # entities/s
FRESH_TARGET = 0.70  # of the raw baseline
IMPORT_TARGET = 0.85  # the import command, of in-process ingest of the same file
SQLITE_TARGET = 0.80  # the import command, of the SQLite upsert script
MEMORY_ALLOWANCE = 64 << 20  # beyond LevelDB's own buffers
MIB = 1 << 20

DATASET = "bench"

# phase name -> (kind, what it reads/writes); the order is the order within a round
PHASES = (
    "raw_fresh_ingest",
    "store_fresh_ingest",
    "raw_unchanged_ingest",
    "store_unchanged_ingest",
    "raw_export",
    "store_export",
    "store_file_ingest",
    "import_cli",
    "sqlite_upsert",
)
INGEST_PHASES = PHASES[:4]
PROCESS_PHASES = ("import_cli", "sqlite_upsert")  # whole processes: their peak RSS is reported

# every named figure and ratio the JSON output holds (tests check them)
FIGURES = tuple(f"{p}.{f}" for p in PHASES for f in ("entities_per_s", "us_per_entity", "seconds"))
MEMORY_FIGURES = tuple(f"{p}.{f}" for p in INGEST_PHASES
                       for f in ("rss_before", "peak_rss", "peak_rss_growth", "peak_anon_growth")) \
    + tuple(f"{p}.peak_rss" for p in PROCESS_PHASES)
RATIOS = (
    "store_fresh_vs_raw_fresh",
    "store_unchanged_vs_raw_unchanged",
    "store_unchanged_vs_store_fresh",
    "raw_unchanged_vs_raw_fresh",
    "store_export_vs_raw_export",
    "import_cli_vs_store_file_ingest",
    "import_cli_vs_sqlite_upsert",
)
TARGETS = ("fresh_ingest", "unchanged_faster_than_fresh", "export_rate", "memory_bounded", "import_vs_in_process",
           "import_vs_sqlite")

SQLITE_SCRIPT = """\
import json, sqlite3, sys

def main(db_path, file_path):
    db = sqlite3.connect(db_path)
    db.execute("CREATE TABLE IF NOT EXISTS entities (id TEXT PRIMARY KEY, body TEXT NOT NULL)")
    upsert = ("INSERT INTO entities (id, body) VALUES (?, ?) "
              "ON CONFLICT (id) DO UPDATE SET body = excluded.body WHERE body != excluded.body")
    n, rows = 0, []
    with db, open(file_path, encoding="utf-8") as lines:
        for line in lines:
            entity = json.loads(line)
            rows.append((entity["_id"], json.dumps(entity, sort_keys=True)))
            if len(rows) >= 1000:
                db.executemany(upsert, rows)
                n, rows = n + len(rows), []
        db.executemany(upsert, rows)
    db.close()
    print(n + len(rows))

main(sys.argv[1], sys.argv[2])
"""

_SEQ = struct.Struct(">Q")
_SORT = orjson.OPT_SORT_KEYS


# -- the phases (each runs in a child process; they return plain dicts) -------------------------------


class _Meter:
    """Samples RSS at every batch (about 10 µs per 1000 entities) and times the loop."""

    def __init__(self) -> None:
        gc.collect()
        self.rss_before, self.anon_before = _common.rss()
        self.peak_sampled = self.rss_before
        self.peak_anon = self.anon_before
        self.samples: list[tuple[int, int]] = []
        self.start = self.stop = 0.0

    def __enter__(self) -> _Meter:
        self.start = time.perf_counter()
        return self

    def sample(self, done: int) -> None:
        total, anon = _common.rss()
        if total > self.peak_sampled:
            self.peak_sampled = total
        if anon > self.peak_anon:
            self.peak_anon = anon
        if done % (BATCH * 50) == 0:
            self.samples.append((done, total))

    def __exit__(self, *exc: object) -> None:
        self.stop = time.perf_counter()

    def result(self, n: int, **extra: Any) -> dict[str, Any]:
        peak = max(_common.peak_rss(), self.peak_sampled)
        return {"seconds": self.stop - self.start, "n": n, "rss_before": self.rss_before,
                "peak_rss": peak, "peak_rss_growth": max(0, peak - self.rss_before),
                "peak_anon_growth": max(0, self.peak_anon - self.anon_before),
                "rss_samples": self.samples, **extra}


def raw_ingest(db_path: str, bodies: str, *, unchanged: bool) -> dict[str, Any]:
    """The raw baseline: parse + canonical bytes + hash + WriteBatch (fresh) or index get + compare."""
    db = plyvel.DB(db_path, create_if_missing=True, **TUNED_OPTIONS)
    parse = storage.parse_json
    dumps = orjson.dumps
    digest = xxhash.xxh3_128_digest
    pack = _SEQ.pack
    get = db.get
    with db.iterator(prefix=b"l", reverse=True, include_value=False) as it:
        last = next(it, None)
    seq = _SEQ.unpack(last[1:])[0] + 1 if last else 0
    n = written = 0
    with _Meter() as meter:
        for body in _common.read_bodies(bodies):
            batch = parse(body)
            with db.write_batch() as wb:
                put = wb.put
                for entity in batch:
                    canonical = dumps(entity, option=_SORT)
                    h = digest(canonical)
                    id_key = b"i" + entity["_id"].encode()
                    if unchanged:
                        old = get(id_key)
                        if old is not None and old[8:] == h:
                            continue
                    key = pack(seq)
                    seq += 1
                    put(b"l" + key, canonical)
                    put(id_key, key + h)
                    written += 1
            n += len(batch)
            meter.sample(n)
    db.close()
    return meter.result(n, written=written)


def store_ingest(root: str, bodies: str, *, unchanged: bool) -> dict[str, Any]:
    """``Dataset.write`` of every body (one batch each)."""
    dataset = storage.DataDir(root, options=OPTIONS).open_dataset(DATASET)
    parse = storage.parse_json
    write = dataset.write
    offset_before = dataset.next_offset
    n = appended = 0
    with _Meter() as meter:
        for body in _common.read_bodies(bodies):
            batch = parse(body)
            appended += write(batch).appended
            n += len(batch)
            meter.sample(n)
    counts = dataset.counts()
    dataset.close()
    return meter.result(n, written=appended, offset_before=offset_before,
                        offset_after=counts["next_offset"], entities=counts["entities"])


def _write_array(out: Any, values: Any) -> int:
    """Write ``values`` (JSON bytes) to ``out`` as one JSON array; returns how many."""
    write = out.write
    chunk: list[bytes] = []
    append = chunk.append
    sep = b"["
    n = 0
    for value in values:
        append(value)
        if len(chunk) >= BATCH:
            write(sep)
            write(b",".join(chunk))
            sep = b","
            n += len(chunk)
            chunk.clear()
    if chunk:
        write(sep)
        write(b",".join(chunk))
        n += len(chunk)
    elif n == 0:
        write(b"[")
    write(b"]")
    return n


def raw_export(root: str, out: str) -> dict[str, Any]:
    """Every log value of the dataset's LevelDB, straight from a plyvel iterator."""
    path = storage.DataDir(root).dataset_path(DATASET)
    db = plyvel.DB(str(path), **TUNED_OPTIONS)
    with open(out, "wb") as f, _Meter() as meter:
        n = _write_array(f, db.iterator(prefix=b"l", include_key=False))
    db.close()
    return meter.result(n, bytes=os.path.getsize(out) if out != os.devnull else None)


def store_export(root: str, out: str) -> dict[str, Any]:
    """The latest live versions, as ``sesamd dataset export`` writes them."""
    dataset = storage.DataDir(root, options=OPTIONS).open_dataset(DATASET, create=False)
    with open(out, "wb") as f, _Meter() as meter:
        n = _write_array(f, (value for _seq, value in dataset.iter_stored(history=False, deleted=False)))
    dataset.close()
    return meter.result(n, bytes=os.path.getsize(out) if out != os.devnull else None)


def import_file_of(bodies: str | Path) -> Path:
    """The import file beside ``bodies``: the same entities as NDJSON, one per line (written once)."""
    path = Path(bodies).with_name("import.ndjson")
    if not path.exists():
        with open(path.with_suffix(".tmp"), "wb") as out:
            for body in _common.read_bodies(bodies):
                out.write(b"\n".join(storage.dumps(e) for e in storage.parse_json(body)) + b"\n")
        path.with_suffix(".tmp").replace(path)
    return path


def store_file_ingest(root: str, file: Path) -> dict[str, Any]:
    """In-process ingest of the import file: parse it streaming, ``Dataset.write`` batches of 1000."""
    dataset = storage.DataDir(root, options=OPTIONS).open_dataset(DATASET)
    write = dataset.write
    n = appended = 0
    with open(file, "rb") as stream, _Meter() as meter:
        batch: list[Any] = []
        for entity, _line in storage.iter_json_entities(stream):
            batch.append(entity)
            if len(batch) >= BATCH:
                appended += write(batch).appended
                n += len(batch)
                batch = []
                meter.sample(n)
        appended += write(batch).appended
        n += len(batch)
    dataset.close()
    return meter.result(n, written=appended)


def _whole_process(argv: list[str]) -> tuple[float, int, str]:
    """Run ``argv`` to its end: (seconds, its peak RSS, its stdout+stderr)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_common.ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise AssertionError(f"{argv[1:4]} exited {done.returncode}: {done.stderr[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, (peak if peak > before else before) * 1024, done.stdout + done.stderr


def import_cli(root: str, file: Path) -> dict[str, Any]:
    """``sesamd dataset import`` of the import file, timed as a whole process."""
    argv = [sys.executable, "-m", "sesamd._cli", "dataset", "import", DATASET, str(file), "--data-dir", root]
    seconds, peak, output = _whole_process(argv)
    with storage.DataDir(root, options=OPTIONS).open_dataset(DATASET, create=False) as dataset:
        counts = dataset.counts()
    return {"seconds": seconds, "n": counts["entities"], "written": counts["log"], "peak_rss": peak,
            "output": output.strip()}


def sqlite_upsert(workdir: Path, file: Path) -> dict[str, Any]:
    """The 20-line SQLite upsert script on the import file, timed as a whole process."""
    script = workdir / "sqlite_upsert.py"
    script.write_text(SQLITE_SCRIPT)
    seconds, peak, output = _whole_process([sys.executable, str(script), str(workdir / "upsert.sqlite"), str(file)])
    n = int(output.split()[0])
    return {"seconds": seconds, "n": n, "written": n, "peak_rss": peak}


def run_phase(phase: str, workdir: str | Path, bodies: str | Path, export_to: str = "file") -> dict[str, Any]:
    """Run one phase in this process. ``workdir`` holds the raw database and the dataset store."""
    workdir = Path(workdir)
    raw_db, root = str(workdir / "raw"), str(workdir / "store")
    out = os.devnull if export_to == "devnull" else str(workdir / f"{phase}.json")
    if phase == "raw_fresh_ingest":
        return raw_ingest(raw_db, str(bodies), unchanged=False)
    if phase == "raw_unchanged_ingest":
        return raw_ingest(raw_db, str(bodies), unchanged=True)
    if phase == "store_fresh_ingest":
        return store_ingest(root, str(bodies), unchanged=False)
    if phase == "store_unchanged_ingest":
        return store_ingest(root, str(bodies), unchanged=True)
    if phase == "raw_export":
        return raw_export(root, out)
    if phase == "store_export":
        return store_export(root, out)
    if phase == "store_file_ingest":
        return store_file_ingest(str(workdir / "file-store"), import_file_of(bodies))
    if phase == "import_cli":
        return import_cli(str(workdir / "import-store"), import_file_of(bodies))
    if phase == "sqlite_upsert":
        return sqlite_upsert(workdir, import_file_of(bodies))
    raise ValueError(f"unknown phase {phase!r}")


def run_phase_isolated(phase: str, workdir: str | Path, bodies: str | Path, export_to: str = "file",
                       timeout: float = 1800) -> dict[str, Any]:
    """Run one phase in a child process (a fresh interpreter: its peak RSS is the phase's own)."""
    argv = [__file__, "--phase", phase, "--workdir", str(workdir), "--bodies", str(bodies),
            "--export-to", export_to]
    return _common.run_child(argv, timeout=timeout)


# -- the benchmark ----------------------------------------------------------------------------------


def check_phase(phase: str, result: dict[str, Any], n: int) -> None:
    """Fail loudly if a phase did not do what it measures."""
    if result["n"] != n:
        raise AssertionError(f"{phase}: processed {result['n']} entities, expected {n}")
    if phase in ("raw_fresh_ingest", "store_fresh_ingest", *PHASES[6:]) and result["written"] != n:
        raise AssertionError(f"{phase}: wrote {result['written']} entities, expected {n}")
    if phase in ("raw_unchanged_ingest", "store_unchanged_ingest") and result["written"] != 0:
        raise AssertionError(f"{phase}: re-ingesting unchanged data wrote {result['written']} entities")
    if phase == "store_unchanged_ingest" and result["offset_after"] != result["offset_before"]:
        raise AssertionError(f"{phase}: the offset moved from {result['offset_before']} to "
                             f"{result['offset_after']}")


def run_benchmark(n: int, *, rounds: int = 3, isolate: bool = True, export_to: str = "file",
                  scratch: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Run every phase ``rounds`` times, round-robin, on ``n`` entities; returns the report."""
    started = time.perf_counter()
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else (lambda msg: None)
    raw: dict[str, list[dict[str, Any]]] = {p: [] for p in PHASES}
    with _common.scratch_dir(parent=scratch) as tmp:
        bodies = tmp / "bodies.ndjson"
        t0 = time.perf_counter()
        data = _common.write_bodies(bodies, n)
        import_file_of(bodies)
        say(f"generated {n:,} entities, {data['avg_entity_bytes']:.0f} B each as compact JSON, "
            f"in {time.perf_counter() - t0:.1f}s")
        for r in range(rounds):
            workdir = tmp / f"round-{r}"
            workdir.mkdir()
            for phase in PHASES:
                if isolate:
                    result = run_phase_isolated(phase, workdir, bodies, export_to)
                else:
                    result = run_phase(phase, workdir, bodies, export_to)
                check_phase(phase, result, n)
                raw[phase].append(result)
            shutil.rmtree(workdir, ignore_errors=True)
            say(f"round {r + 1}/{rounds} done at {time.perf_counter() - started:.0f}s: " + ", ".join(
                f"{p} {n / raw[p][-1]['seconds']:,.0f}/s" for p in PHASES))
    report = build_report(raw, n, rounds, data, isolate, export_to)
    report["config"]["wall_seconds"] = time.perf_counter() - started
    return report


def build_report(raw: dict[str, list[dict[str, Any]]], n: int, rounds: int, data: dict[str, Any],
                 isolate: bool, export_to: str) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    rate: dict[str, float] = {}
    for phase in PHASES:
        rates = [r["n"] / r["seconds"] for r in raw[phase]]
        stats = _common.summarize(rates)
        rate[phase] = stats.median
        figures[f"{phase}.entities_per_s"] = stats
        figures[f"{phase}.us_per_entity"] = 1e6 / stats.median
        figures[f"{phase}.seconds"] = _common.summarize([r["seconds"] for r in raw[phase]])
    for phase in INGEST_PHASES:
        for name in ("rss_before", "peak_rss", "peak_rss_growth", "peak_anon_growth"):
            figures[f"{phase}.{name}"] = max(r[name] for r in raw[phase])  # the worst round
        figures[f"{phase}.rss_samples"] = raw[phase][-1]["rss_samples"]
    for phase in PROCESS_PHASES:
        figures[f"{phase}.peak_rss"] = max(r["peak_rss"] for r in raw[phase])

    def per_round(a: str, b: str) -> list[float]:
        return [(x["n"] / x["seconds"]) / (y["n"] / y["seconds"])
                for x, y in zip(raw[a], raw[b], strict=True)]

    pairs = {
        "store_fresh_vs_raw_fresh": ("store_fresh_ingest", "raw_fresh_ingest"),
        "store_unchanged_vs_raw_unchanged": ("store_unchanged_ingest", "raw_unchanged_ingest"),
        "store_unchanged_vs_store_fresh": ("store_unchanged_ingest", "store_fresh_ingest"),
        "raw_unchanged_vs_raw_fresh": ("raw_unchanged_ingest", "raw_fresh_ingest"),
        "store_export_vs_raw_export": ("store_export", "raw_export"),
        "import_cli_vs_store_file_ingest": ("import_cli", "store_file_ingest"),
        "import_cli_vs_sqlite_upsert": ("import_cli", "sqlite_upsert"),
    }
    ratios = {name: rate[a] / rate[b] for name, (a, b) in pairs.items()}
    ratios_per_round = {name: per_round(a, b) for name, (a, b) in pairs.items()}

    budget = 2 * TUNED_OPTIONS["write_buffer_size"] + TUNED_OPTIONS["lru_cache_size"] + MEMORY_ALLOWANCE
    growth = max(figures[f"{p}.peak_rss_growth"] for p in ("store_fresh_ingest", "store_unchanged_ingest"))
    targets = {
        "fresh_ingest": {"value": ratios["store_fresh_vs_raw_fresh"], "target": FRESH_TARGET,
                         "rule": "store fresh ingest / raw fresh baseline >= 0.70"},
        "unchanged_faster_than_fresh": {"value": ratios["store_unchanged_vs_store_fresh"], "target": 1.0,
                                        "rule": "store unchanged re-ingest / store fresh ingest > 1"},
        "export_rate": {"value": rate["store_export"], "target": EXPORT_TARGET,
                        "rule": "store export >= 300,000 entities/s"},
        "memory_bounded": {"value": growth, "target": budget,
                           "rule": "peak RSS growth of store ingest <= 2 write buffers + cache + 64 MiB"},
        "import_vs_in_process": {"value": ratios["import_cli_vs_store_file_ingest"], "target": IMPORT_TARGET,
                                 "rule": "sesamd dataset import (whole process) / in-process ingest >= 0.85"},
        "import_vs_sqlite": {"value": ratios["import_cli_vs_sqlite_upsert"], "target": SQLITE_TARGET,
                             "rule": "sesamd dataset import / SQLite upsert script (both whole processes) >= 0.80"},
    }
    for name, t in targets.items():
        t["met"] = bool(t["value"] > t["target"]) if name == "unchanged_faster_than_fresh" else \
            bool(t["value"] <= t["target"]) if name == "memory_bounded" else bool(t["value"] >= t["target"])
    return {
        "config": {"n": n, "rounds": rounds, "batch": BATCH, "isolated": isolate, "export_to": export_to,
                   "avg_entity_bytes": data["avg_entity_bytes"], "leveldb_options": TUNED_OPTIONS},
        "environment": _common.environment(),
        "figures": figures,
        "ratios": ratios,
        "ratios_per_round": ratios_per_round,
        "targets": targets,
    }


def format_report(report: dict[str, Any]) -> str:
    f, ratios, targets = report["figures"], report["ratios"], report["targets"]
    cfg = report["config"]

    def rate(p: str) -> str:
        s = f[f"{p}.entities_per_s"]
        return f"{s['median']:,.0f} ({s['min'] / 1000:,.0f}k-{s['max'] / 1000:,.0f}k)"

    def us(p: str) -> str:
        return f"{f[f'{p}.us_per_entity']:.2f}"

    def met(name: str) -> str:
        return "yes" if targets[name]["met"] else "NO"

    rows = [
        ("raw fresh ingest (parse+hash+WriteBatch)", rate("raw_fresh_ingest"), us("raw_fresh_ingest"),
         "1.00 (baseline)", "", ""),
        ("store fresh ingest (Dataset.write)", rate("store_fresh_ingest"), us("store_fresh_ingest"),
         f"{ratios['store_fresh_vs_raw_fresh']:.2f}", ">= 0.70", met("fresh_ingest")),
        ("raw unchanged (parse+hash+get+compare)", rate("raw_unchanged_ingest"), us("raw_unchanged_ingest"),
         "1.00 (baseline)", "", ""),
        ("store unchanged re-ingest", rate("store_unchanged_ingest"), us("store_unchanged_ingest"),
         f"{ratios['store_unchanged_vs_raw_unchanged']:.2f}",
         f"> fresh ({ratios['store_unchanged_vs_store_fresh']:.2f}x)", met("unchanged_faster_than_fresh")),
        ("raw export (plyvel iterate + join)", rate("raw_export"), us("raw_export"),
         "1.00 (baseline)", "", ""),
        ("store export (iter_stored latest live)", rate("store_export"), us("store_export"),
         f"{ratios['store_export_vs_raw_export']:.2f}", ">= 300,000/s", met("export_rate")),
        ("in-process ingest of the import file", rate("store_file_ingest"), us("store_file_ingest"),
         "1.00 (baseline)", "", ""),
        ("import (sesamd dataset import, process)", rate("import_cli"), us("import_cli"),
         f"{ratios['import_cli_vs_store_file_ingest']:.2f}", ">= 0.85", met("import_vs_in_process")),
        ("sqlite upsert script (process)", rate("sqlite_upsert"), us("sqlite_upsert"), "", "", ""),
        ("import vs sqlite upsert", "", "", f"{ratios['import_cli_vs_sqlite_upsert']:.2f}", ">= 0.80",
         met("import_vs_sqlite")),
    ]
    out = [f"{cfg['n']:,} entities ({cfg['avg_entity_bytes']:.0f} B), batches of {cfg['batch']}, "
           f"median (min-max) of {cfg['rounds']} rounds, export to {cfg['export_to']}", ""]
    out.append(_common.format_table(
        ("measurement", "entities/s (min-max)", "µs/entity", "ratio vs baseline", "target", "met?"), rows))
    mem_rows = []
    budget = targets["memory_bounded"]["target"]
    for p in INGEST_PHASES:
        mem_rows.append((p, f"{f[f'{p}.rss_before'] / MIB:.0f}", f"{f[f'{p}.peak_rss'] / MIB:.0f}",
                         f"{f[f'{p}.peak_rss_growth'] / MIB:.0f}", f"{f[f'{p}.peak_anon_growth'] / MIB:.0f}",
                         f"{budget / MIB:.0f}" if p.startswith("store") else "",
                         met("memory_bounded") if p.startswith("store") else ""))
    for p in PROCESS_PHASES:
        mem_rows.append((p + " (whole process)", "", f"{f[f'{p}.peak_rss'] / MIB:.0f}", "", "", "", ""))
    out += ["", "memory (MiB; the worst round; each phase in its own process):"]
    out.append(_common.format_table(
        ("phase", "RSS before", "peak RSS", "growth", "anon growth", "budget", "met?"), mem_rows))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_N:,} entities instead of {FULL_N:,}")
    ap.add_argument("--n", type=int, default=None, help="entity count (overrides --quick)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", metavar="OUT", default=None, help="write every figure and ratio to OUT")
    ap.add_argument("--export-to", choices=("file", "devnull"), default="file",
                    help="where export writes its JSON array (a file in the temp dir, or /dev/null)")
    ap.add_argument("--dir", default=None, help="parent of the temp dir (default: the system's)")
    ap.add_argument("--in-process", action="store_true", help="run the phases in this process (no RSS)")
    ap.add_argument("--phase", help=argparse.SUPPRESS)  # internal: run one phase in a child process
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    ap.add_argument("--bodies", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.phase:
        print(json.dumps(run_phase(args.phase, args.workdir, args.bodies, args.export_to)))
        return 0
    n = args.n or (QUICK_N if args.quick else FULL_N)
    report = run_benchmark(n, rounds=args.rounds, isolate=not args.in_process, export_to=args.export_to,
                           scratch=args.dir)
    print(format_report(report))
    print(f"\nwall time {report['config']['wall_seconds']:.0f}s")
    if args.json:
        _common.write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
