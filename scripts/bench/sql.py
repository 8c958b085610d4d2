#!/usr/bin/env python3
"""Benchmark of the ``sql`` source and sink against PostgreSQL, each beside a plain psycopg loop doing the same
work in the same run, and (full mode) a 1M-row table pumped by the ``sql`` source with its peak RSS.

    .venv/bin/python scripts/bench/sql.py --quick                  # 10k rows, 1 round, no 1M run
    .venv/bin/python scripts/bench/sql.py --json bench-sql.json    # 100k rows, 3 rounds, then the 1M run

The database: a scratch database on the loopback PostgreSQL server (``actors.testing.scratch_database``, made
and dropped by the run). Its table ``people`` holds N rows made by ``generate_series`` (about 200 bytes a row)::

    id integer PRIMARY KEY, name text, email text, age integer, active boolean, balance numeric(12,2),
    created timestamptz, tags text[]

so every row has a decimal (``~f``), an instant (``~t``) and an array besides the plain values. The SQL system
is ``system:postgresql`` (psycopg 3, ``postgresql+psycopg``), built and opened once.

Measurements, round-robin per round, the component and its baseline alternating which goes first:

``source.pipe``
    ``{"source": {"type": "sql", "system": "pg", "table": "people"}, "sink": {"type": "dataset"}}`` run by
    ``actors.build_runner(...).run()`` into a fresh dataset (a full run: the table's columns reflected, rows
    streamed through a server-side cursor, ``fetch_size`` 1000, each value to its wire form).
``source.baseline``
    One psycopg connection (opened in the timing), a named (server-side) cursor over ``SELECT * FROM people``
    (``itersize`` 1000), each row made a dict with ``_id`` its id as text and turned into wire form with
    ``storage.encode`` (Decimal -> ``~f``, datetime -> ``~t``), written with ``Dataset.write`` 1000 at a time
    into a fresh dataset: what a hand-written read loop into the store does.
``sink.pipe``
    ``{"source": {"type": "dataset", "dataset": "people"}, "sink": {"type": "sql", "system": "pg",
    "table": "copy_N"}}`` into an empty table of the same columns (made before, not timed); the dataset
    ``people`` is the source pipe's output, written before the rounds (not timed). Upserts, one transaction per
    batch of 1000.
``sink.baseline``
    The latest entities of ``people`` (``Dataset.iter_entities``) decoded with ``storage.decode`` to Python
    values, made tuples of the table's columns and sent with psycopg ``executemany`` of the same
    ``INSERT ... ON CONFLICT (id) DO UPDATE`` 1000 at a time, a commit per batch, into an empty table.
``sink.copy`` (no target; for scale)
    The same tuples through ``COPY copy_N FROM STDIN`` (psycopg ``copy.write_row``), one transaction.

Every phase is checked: N entities in the dataset, N rows in the table, and the sink's table equal to the
source table (a checksum over every column). Targets: source and sink rows/s >= 70 % of their baselines'.

The 1M run (full mode, or ``--million``): a child process (so its peak RSS is its own) pumps a table of 1M rows
(``id``, a 100-byte ``name``, ``amount numeric(12,2)``, ``changed timestamp``; the table is filled by
``generate_series`` first) by a ``sql`` source with ``updated_column`` into a dataset, and reports its time,
its rows/s and the growth of its peak RSS over the RSS it had before the run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import _common  # before the project's packages: it puts the project root first on sys.path
import psycopg

import actors
import storage
from actors.testing import ScratchDatabase, scratch_database
from sesamd._process import tune_process

QUICK_N = 10_000
FULL_N = 100_000
MILLION = 1_000_000
BATCH = _common.BATCH  # rows per fetch, per Dataset.write, per sink batch and transaction
TARGET = 0.70
MIB = 1 << 20

COLUMNS = ("id", "name", "email", "age", "active", "balance", "created", "tags")
TABLE = """CREATE TABLE {t} (id integer PRIMARY KEY, name text, email text, age integer, active boolean,
                             balance numeric(12,2), created timestamptz, tags text[])"""
FILL = """INSERT INTO people
    SELECT i, 'Person ' || i, 'person' || i || '@example.com', 18 + i % 78, i % 5 <> 0,
           ((i * 7919) % 10000000 - 100000) / 100.0, '2020-01-01T00:00:00Z'::timestamptz + i * interval '17 s',
           ARRAY['tag' || i % 7, 'tag' || i % 11]
    FROM generate_series(1, {n}) AS i"""
UPSERT = (f"INSERT INTO {{t}} ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))}) "
          f"ON CONFLICT (id) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in COLUMNS[1:])}")
CHECKSUM = "SELECT count(*), md5(string_agg(t::text, '|' ORDER BY id)) FROM {t} AS t"

MEASURED = {"source": "pipe", "sink": "pipe"}
PHASES = ("source.pipe", "source.baseline", "sink.pipe", "sink.baseline", "sink.copy")
FIGURES = (*(f"{p}.{f}" for p in PHASES for f in ("rows_per_s", "us_per_row", "seconds")), "setup.seconds")
RATIOS = ("source.pipe_vs_baseline", "sink.pipe_vs_baseline", "sink.copy_vs_baseline")
TARGETS = ("source_throughput", "sink_throughput")


def _dsn(db: ScratchDatabase) -> str:
    return db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


# -- the phases ---------------------------------------------------------------------------------------


def source_pipe(datasets: actors.Datasets, system: Any, name: str) -> dict[str, Any]:
    config = {"_id": name, "type": "pipe", "source": {"type": "sql", "system": "pg", "table": "people"},
              "sink": {"type": "dataset", "dataset": name}, "batch_size": BATCH}
    started = time.perf_counter()
    result = actors.build_runner(config, datasets, systems={"pg": system}).run()
    return {"seconds": time.perf_counter() - started, "rows": result.changes}


def source_baseline(datasets: actors.Datasets, dsn: str, name: str) -> dict[str, Any]:
    started = time.perf_counter()
    dataset = datasets.open(name)
    encode = storage.encode
    written = 0
    with psycopg.connect(dsn) as connection, connection.cursor(name="bench") as cursor:
        cursor.itersize = BATCH
        cursor.execute("SELECT * FROM people")
        columns = [c.name for c in cursor.description or ()]
        while rows := cursor.fetchmany(BATCH):
            batch = []
            for row in rows:
                entity = dict(zip(columns, row, strict=True))
                entity["_id"] = str(entity["id"])
                batch.append(encode(entity))
            written += dataset.write(batch).appended
    return {"seconds": time.perf_counter() - started, "rows": written}


def sink_pipe(datasets: actors.Datasets, system: Any, db: ScratchDatabase, table: str) -> dict[str, Any]:
    db.run(TABLE.format(t=table))
    config = {"_id": f"to-{table}", "type": "pipe", "source": {"type": "dataset", "dataset": "people"},
              "sink": {"type": "sql", "system": "pg", "table": table}, "batch_size": BATCH}
    runner = actors.build_runner(config, datasets, systems={"pg": system})
    started = time.perf_counter()
    result = runner.run()
    return {"seconds": time.perf_counter() - started, "rows": result.processed, "table": table}


def _tuples(datasets: actors.Datasets) -> Any:
    decode = storage.decode
    for entity in datasets.open("people", create=False).iter_entities(history=False):
        value = decode(entity)
        yield tuple(value.get(c) for c in COLUMNS)


def sink_baseline(datasets: actors.Datasets, db: ScratchDatabase, dsn: str, table: str) -> dict[str, Any]:
    db.run(TABLE.format(t=table))
    statement = UPSERT.format(t=table)
    started = time.perf_counter()
    sent = 0
    with psycopg.connect(dsn) as connection:
        batch: list[tuple[Any, ...]] = []

        def flush() -> None:
            with connection.cursor() as cursor:
                cursor.executemany(statement, batch)
            connection.commit()

        for row in _tuples(datasets):
            batch.append(row)
            if len(batch) >= BATCH:
                flush()
                sent += len(batch)
                batch = []
        if batch:
            flush()
            sent += len(batch)
    return {"seconds": time.perf_counter() - started, "rows": sent, "table": table}


def sink_copy(datasets: actors.Datasets, db: ScratchDatabase, dsn: str, table: str) -> dict[str, Any]:
    db.run(TABLE.format(t=table))
    started = time.perf_counter()
    sent = 0
    with psycopg.connect(dsn) as connection, connection.cursor() as cursor:
        with cursor.copy(f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in _tuples(datasets):
                copy.write_row(row)
                sent += 1
        connection.commit()
    return {"seconds": time.perf_counter() - started, "rows": sent, "table": table}


# -- the run ------------------------------------------------------------------------------------------


def measure(n: int, *, rounds: int = 3, scratch: str | None = None,
            log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True)) -> dict[str, Any]:
    """Run the source and sink phases on ``n`` rows; returns the report (``FIGURES``, ``RATIOS``, ``TARGETS``)."""
    started = time.perf_counter()
    raw: dict[str, list[dict[str, Any]]] = {p: [] for p in PHASES}
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(_common.scratch_dir("sesamd-bench-sql-", parent=scratch))
        db = stack.enter_context(scratch_database("postgresql", tmp))
        dsn = _dsn(db)
        t0 = time.perf_counter()
        db.run(TABLE.format(t="people"), FILL.format(n=n), "ANALYZE people")
        expected = db.rows(CHECKSUM.format(t="people"))[0]
        system = db.system(_id="pg", pool_size=2)
        datasets = actors.Datasets(str(tmp / "data"))
        stack.callback(datasets.close_all)
        if source_pipe(datasets, system, "people")["rows"] != n:  # the sinks' input, and a warm-up
            raise RuntimeError("the people dataset did not get every row")
        setup_seconds = time.perf_counter() - t0
        log(f"setup: {n:,} rows in PostgreSQL and the people dataset in {setup_seconds:.1f} s")
        tables = iter(range(10**6))
        for r in range(rounds):
            phases: dict[str, Callable[[], dict[str, Any]]] = {
                "source.pipe": lambda r=r: source_pipe(datasets, system, f"pull-{r}"),
                "source.baseline": lambda r=r: source_baseline(datasets, dsn, f"base-{r}"),
                "sink.pipe": lambda: sink_pipe(datasets, system, db, f"copy_{next(tables)}"),
                "sink.baseline": lambda: sink_baseline(datasets, db, dsn, f"copy_{next(tables)}"),
                "sink.copy": lambda: sink_copy(datasets, db, dsn, f"copy_{next(tables)}"),
            }
            order = list(PHASES) if r % 2 == 0 else ["source.baseline", "source.pipe", "sink.copy",
                                                     "sink.baseline", "sink.pipe"]
            for phase in order:
                got = phases[phase]()
                _check(db, phase, got, n, expected)
                raw[phase].append(got)
            log(f"round {r + 1}/{rounds}: " + ", ".join(f"{p} {n / raw[p][-1]['seconds']:,.0f}/s" for p in PHASES))
    report = build_report(raw, n=n, rounds=rounds, setup_seconds=setup_seconds)
    report["config"]["wall_seconds"] = time.perf_counter() - started
    return report


def _check(db: ScratchDatabase, phase: str, got: dict[str, Any], n: int, expected: tuple[Any, ...]) -> None:
    if got["rows"] != n:
        raise RuntimeError(f"{phase}: {got['rows']:,} rows, expected {n:,}")
    if "table" in got:
        table = got.pop("table")
        copied = db.rows(CHECKSUM.format(t=table))[0]
        if copied != expected:
            raise RuntimeError(f"{phase}: table {table} is {copied}, the source table {expected}")
        db.run(f"DROP TABLE {table}")


def build_report(raw: dict[str, list[dict[str, Any]]], *, n: int, rounds: int,
                 setup_seconds: float) -> dict[str, Any]:
    figures: dict[str, Any] = {"setup.seconds": setup_seconds}
    stats: dict[str, Any] = {}
    for phase in PHASES:
        seconds = stats[phase] = _common.summarize([r["seconds"] for r in raw[phase]])
        figures[f"{phase}.seconds"] = seconds.median
        figures[f"{phase}.rows_per_s"] = n / seconds.median
        figures[f"{phase}.us_per_row"] = seconds.median / n * 1e6
    ratios = {name: figures[f"{name.split('_vs_')[0]}.rows_per_s"]
              / figures[f"{name.split('.')[0]}.baseline.rows_per_s"] for name in RATIOS}
    rules = {"source": "sql source pipe rows/s / psycopg server-side cursor + storage.encode + Dataset.write >= 0.70",
             "sink": "sql sink pipe rows/s / Dataset.iter_entities + storage.decode + psycopg executemany upsert, "
                     "a commit per 1000 >= 0.70"}
    targets = {f"{c}_throughput": {"value": ratios[f"{c}.pipe_vs_baseline"], "target": TARGET, "rule": rules[c]}
               for c in MEASURED}
    for t in targets.values():
        t["met"] = bool(t["value"] >= t["target"])
    notes = ["PostgreSQL on the same 2-core machine as the bench, over 127.0.0.1 TCP: the server's work is in "
             "every figure, component and baseline alike",
             "source: timed from build_runner to the end of run(), a fresh dataset each round; sink: run() only, "
             "into a fresh empty table each round (so every row is an insert through ON CONFLICT)"]
    return {"benchmark": "sql", "config": {"n": n, "rounds": rounds, "batch": BATCH},
            "environment": _common.environment(), "figures": figures, "ratios": ratios, "targets": targets,
            "stats": stats, "raw": raw, "notes": notes}


# -- the 1M-row run, in a child process ----------------------------------------------------------------


def million(rows: int, scratch: str | None) -> dict[str, Any]:
    """Fill a table of ``rows`` rows, pump it with a sql source into a dataset; time and peak RSS growth."""
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(_common.scratch_dir("sesamd-bench-sql-1m-", parent=scratch))
        db = stack.enter_context(scratch_database("postgresql", tmp))
        db.run("CREATE TABLE big (id integer PRIMARY KEY, name text, amount numeric(12,2), changed timestamp)",
               f"""INSERT INTO big SELECT i, repeat('x', 94) || lpad(i::text, 7, '0'), i / 100.0,
                   '2024-01-01'::timestamp + i * interval '1 s' FROM generate_series(1, {rows}) AS i""",
               "ANALYZE big")
        system = db.system(_id="pg")
        datasets = actors.Datasets(str(tmp / "data"))
        stack.callback(datasets.close_all)
        config = {"_id": "big", "type": "pipe", "batch_size": BATCH,
                  "source": {"type": "sql", "system": "pg", "table": "big", "updated_column": "changed"}}
        runner = actors.build_runner(config, datasets, systems={"pg": system})
        before = _common.rss()[0]
        peak_before = _common.peak_rss()
        started = time.perf_counter()
        result = runner.run()
        seconds = time.perf_counter() - started
        peak = _common.peak_rss()
        if result.changes != rows:
            raise RuntimeError(f"the 1M run stored {result.changes:,} rows, expected {rows:,}")
        return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "rss_before_mib": before / MIB,
                "peak_rss_mib": peak / MIB, "peak_before_run_mib": peak_before / MIB,
                "peak_growth_mib": (peak - max(before, 0)) / MIB, "offset": result.offset}


def format_report(report: dict[str, Any]) -> str:
    ratios, targets, stats, cfg = (report[k] for k in ("ratios", "targets", "stats", "config"))
    n = cfg["n"]

    def rate(phase: str) -> str:
        s = stats[phase]
        return f"{n / s['median']:,.0f}/s ({n / s['max']:,.0f}-{n / s['min']:,.0f})"

    rows = [["sql source pipe, PostgreSQL -> dataset", rate("source.pipe"),
             f"psycopg cursor + encode + write {rate('source.baseline')}", f"{ratios['source.pipe_vs_baseline']:.2f}",
             f">= {TARGET:.2f}", "yes" if targets["source_throughput"]["met"] else "NO"],
            ["sql sink pipe, dataset -> PostgreSQL", rate("sink.pipe"),
             f"decode + executemany upsert {rate('sink.baseline')}", f"{ratios['sink.pipe_vs_baseline']:.2f}",
             f">= {TARGET:.2f}", "yes" if targets["sink_throughput"]["met"] else "NO"],
            ["(for scale) COPY FROM STDIN", rate("sink.copy"), f"executemany upsert {rate('sink.baseline')}",
             f"{ratios['sink.copy_vs_baseline']:.2f}", "-", "-"]]
    out = [f"{n:,} rows of 8 columns, batches of {cfg['batch']}, median (min-max) of {cfg['rounds']} rounds; "
           "rows/s, local PostgreSQL", "", _common.format_table(("measurement", "figure", "baseline", "ratio",
                                                                 "target", "met?"), rows)]
    big = report.get("million")
    if big:
        out.append(f"\n{big['rows']:,}-row table by a sql source into a dataset: {big['seconds']:.1f} s "
                   f"({big['rows_per_s']:,.0f} rows/s), peak RSS {big['peak_rss_mib']:.0f} MiB "
                   f"({big['peak_growth_mib']:+.0f} MiB over the {big['rss_before_mib']:.0f} MiB before the run)")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_N:,} rows, 1 round, no 1M run")
    ap.add_argument("--n", type=int, default=None, help="row count (overrides --quick)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds (default 3, 1 with --quick)")
    ap.add_argument("--million", type=int, nargs="?", const=MILLION, default=None, metavar="ROWS",
                    help=f"run the large-table phase (default {MILLION:,} rows; on by default without --quick)")
    ap.add_argument("--million-child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", metavar="OUT", default=None, help="write every figure and ratio to OUT ('-': stdout)")
    ap.add_argument("--dir", default=None, help="parent of the temp dirs (default: the system's)")
    args = ap.parse_args(argv)
    tune_process()  # as sesamd serve tunes itself, for every phase alike
    if args.million_child:
        print(json.dumps(million(args.million_child, args.dir)))
        return 0
    n = args.n or (QUICK_N if args.quick else FULL_N)
    rounds = args.rounds or (1 if args.quick else 3)
    if n < 1 or rounds < 1:
        ap.error("--n and --rounds must be at least 1")
    report = measure(n, rounds=rounds, scratch=args.dir)
    big_rows = args.million if args.million is not None else (None if args.quick else MILLION)
    if big_rows:
        print(f"large table: {big_rows:,} rows in a child process...", file=sys.stderr, flush=True)
        child = [str(Path(__file__).resolve()), "--million-child", str(big_rows)]
        report["million"] = _common.run_child(child + (["--dir", args.dir] if args.dir else []))
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
