#!/usr/bin/env python3
"""Benchmark of the HTTP connectors, the ``json`` source and the ``json`` sink, against bare ``httpx`` loops doing
the same work, each figure beside its baseline measured in the same run.

    .venv/bin/python scripts/bench/connectors.py --quick                       # 10k entities, 1 round
    .venv/bin/python scripts/bench/connectors.py --json bench-connectors.json  # 100k entities, 3 rounds

The web server: a ``http.server.ThreadingHTTPServer`` on 127.0.0.1 (HTTP/1.1 keep-alive, Content-Length always
sent) in a daemon thread of this process. ``GET /entities.json`` answers a pre-rendered JSON array of N
entities (``_common.entities``, about 320 bytes each); ``POST /receiver`` reads and discards the body and
answers 200 ``{}``.

Measurements, round-robin per round, the connector and its baseline alternating which goes first:

``source.pipe``
    The pipe ``{"source": {"type": "json", "system": "web", "url": "entities.json"}, "sink": {"type":
    "dataset"}}`` run by ``actors.build_runner(...).run()`` with a ``system:url`` system into a fresh dataset.
``source.baseline``
    The same bytes fetched with a bare ``httpx.Client().stream("GET", url)``, parsed with
    ``storage.iter_json_entities`` over the streamed body (64 KiB chunks, as the source reads), written with
    ``Dataset.write`` in batches of the same size into a fresh dataset.
``sink.pipe``
    The pipe ``{"source": {"type": "dataset", "dataset": "people"}, "sink": {"type": "json", "system": "web",
    "url": "receiver", "batch_size": 1000}}`` (``people``, N entities, written before and not timed).
``sink.baseline``
    A bare ``httpx.Client`` loop reading the latest entities of ``people`` (``Dataset.iter_entities``) and
    POSTing them 1000 at a time as JSON arrays (``storage.dumps`` each) to the same receiver.

Targets: connector entities/s >= 70 % of its baseline's. Median of ``--rounds`` rounds (default 3).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
_ROOT = Path(os.environ.get("SESAMD_BENCH_ROOT") or _HERE.parents[1]).resolve()
# Run as a script, this directory comes first on sys.path and its dtl.py / storage.py would shadow the
# packages; put the project root first and keep this directory (after it) for ``_common``.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path[0:0] = [str(_ROOT), str(_HERE)]

import _common  # noqa: E402  (scripts/bench/_common.py)
import httpx  # noqa: E402
import orjson  # noqa: E402
import trio  # noqa: E402

import actors  # noqa: E402
import storage  # noqa: E402
from actors.components import build_system  # noqa: E402

QUICK_N = 10_000
FULL_N = 100_000
BATCH = _common.BATCH  # the pipes' batch_size, the sink's batch_size and the baselines' batch
CHUNK = 1 << 16  # bytes per read of a streamed body (what the json source uses)
TARGET = 0.70  # connector entities/s / baseline entities/s
MB = 1_000_000

CONNECTORS = ("source", "sink")
KINDS = ("pipe", "baseline")
PHASES = tuple(f"{c}.{k}" for c in CONNECTORS for k in KINDS)
PEOPLE = "people"

# every named figure, ratio and target of the JSON output (the tests check them)
FIGURES = (*(f"{p}.{f}" for p in PHASES for f in ("entities_per_s", "us_per_entity", "seconds")),
           "body.bytes", "setup.seconds")
RATIOS = tuple(f"{c}.pipe_vs_baseline" for c in CONNECTORS)
TARGETS = tuple(f"{c}_throughput" for c in CONNECTORS)


# -- the web server -----------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection for all the requests of a client
    body: bytes = b"[]"

    def _answer(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/entities.json":
            self._answer(200, self.server.body)  # type: ignore[attr-defined]
        else:
            self._answer(404, b'{"error": "not found"}')

    def do_POST(self) -> None:
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)
        self.server.received += 1  # type: ignore[attr-defined]
        self._answer(200 if self.path.split("?", 1)[0] == "/receiver" else 404, b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class WebServer:
    """The benchmark's web server in a daemon thread; ``port`` once started (a context manager)."""

    def __init__(self, body: bytes) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.body = body  # type: ignore[attr-defined]
        self.server.received = 0  # type: ignore[attr-defined]
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="bench-web", daemon=True)

    @property
    def received(self) -> int:
        return self.server.received  # type: ignore[attr-defined]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def __enter__(self) -> WebServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- the phases ---------------------------------------------------------------------------------------


def source_pipe(datasets: actors.Datasets, system: Any, name: str) -> dict[str, Any]:
    config = {"_id": name, "type": "pipe", "source": {"type": "json", "system": "web", "url": "entities.json"},
              "sink": {"type": "dataset", "dataset": name}, "batch_size": BATCH}
    started = time.perf_counter()
    runner = actors.build_runner(config, datasets, systems={"web": system})
    result = runner.run()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "changes": result.changes}


class _Stream:
    """A file-like ``read(n)`` over a streamed response body."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.iter_bytes(CHUNK)

    def read(self, size: int = -1) -> bytes:
        return next(self._chunks, b"")


def source_baseline(datasets: actors.Datasets, client: httpx.Client, url: str, name: str) -> dict[str, Any]:
    started = time.perf_counter()
    dataset = datasets.open(name)
    changes = 0
    with client.stream("GET", url) as response:
        response.raise_for_status()
        batch: list[Any] = []
        for entity, _line in storage.iter_json_entities(_Stream(response), chunk_size=CHUNK):
            batch.append(entity)
            if len(batch) >= BATCH:
                changes += dataset.write(batch).appended
                batch = []
        if batch:
            changes += dataset.write(batch).appended
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "changes": changes}


def sink_pipe(datasets: actors.Datasets, system: Any, name: str) -> dict[str, Any]:
    config = {"_id": name, "type": "pipe", "source": {"type": "dataset", "dataset": PEOPLE},
              "sink": {"type": "json", "system": "web", "url": "receiver", "batch_size": BATCH},
              "batch_size": BATCH}
    runner = actors.build_runner(config, datasets, systems={"web": system})
    started = time.perf_counter()
    result = runner.run()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "changes": result.processed}  # the sink writes no dataset: count what it read


def sink_baseline(datasets: actors.Datasets, client: httpx.Client, url: str) -> dict[str, Any]:
    started = time.perf_counter()
    dataset = datasets.open(PEOPLE, create=False)
    headers = {"Content-Type": "application/json"}
    sent = 0
    batch: list[bytes] = []
    dumps = storage.dumps

    def post() -> None:
        response = client.post(url, content=b"[" + b",".join(batch) + b"]", headers=headers)
        response.raise_for_status()

    for entity in dataset.iter_entities(history=False):
        batch.append(dumps(entity))
        if len(batch) >= BATCH:
            post()
            sent += len(batch)
            batch = []
    if batch:
        post()
        sent += len(batch)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "changes": sent}


# -- the run ------------------------------------------------------------------------------------------


def render_body(n: int) -> bytes:
    return orjson.dumps(list(_common.entities(n)))


def _check(phase: str, got: dict[str, Any], n: int) -> None:
    if got["changes"] != n:
        raise RuntimeError(f"{phase}: {got['changes']:,} entities, expected {n:,}")
    if phase.startswith("sink.") and got["posts"] < -(-n // BATCH):
        raise RuntimeError(f"{phase}: the receiver got {got['posts']:,} POSTs, expected {-(-n // BATCH):,}")


def measure(n: int, *, rounds: int = 3, scratch: str | None = None,
            log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True)) -> dict[str, Any]:
    """Run the whole benchmark on ``n`` entities; returns the report (``FIGURES``, ``RATIOS``, ``TARGETS``)."""
    started = time.perf_counter()
    body = render_body(n)
    raw: dict[str, list[dict[str, Any]]] = {p: [] for p in PHASES}
    with _common.scratch_dir("sesamd-bench-connectors-", parent=scratch) as tmp, WebServer(body) as web:
        datasets = actors.Datasets(str(tmp / "data"))
        system = build_system({"_id": "web", "type": "system:url",
                               "url_pattern": f"http://127.0.0.1:{web.port}/%s"})
        trio.run(system.open)
        client = httpx.Client()
        try:
            t0 = time.perf_counter()
            people = datasets.open(PEOPLE)
            batch: list[Any] = []
            for entity, _line in storage.iter_json_entities(_Bytes(body), chunk_size=CHUNK):
                batch.append(entity)
                if len(batch) >= BATCH:
                    people.write(batch)
                    batch = []
            if batch:
                people.write(batch)
            people.set_populated(True)
            setup_seconds = time.perf_counter() - t0
            log(f"setup: {n:,} entities ({len(body) / MB:,.1f} MB) written in {setup_seconds:.1f} s")
            posts = web.received
            for r in range(rounds):
                for connector in CONNECTORS:
                    for kind in (KINDS if r % 2 == 0 else KINDS[::-1]):
                        phase = f"{connector}.{kind}"
                        if phase == "source.pipe":
                            got = source_pipe(datasets, system, f"pull-{r}")
                        elif phase == "source.baseline":
                            got = source_baseline(datasets, client, web.url("entities.json"), f"base-{r}")
                        elif phase == "sink.pipe":
                            got = sink_pipe(datasets, system, f"push-{r}")
                        else:
                            got = sink_baseline(datasets, client, web.url("receiver"))
                        got["posts"] = web.received - posts
                        posts = web.received
                        _check(phase, got, n)
                        raw[phase].append(got)
                log(f"round {r + 1}/{rounds}: " + ", ".join(f"{p} {n / raw[p][-1]['seconds']:,.0f}/s" for p in PHASES))
        finally:
            client.close()
            trio.run(system.close)
            datasets.close_all()
    report = build_report(raw, n=n, rounds=rounds, body_bytes=len(body), setup_seconds=setup_seconds)
    report["config"]["wall_seconds"] = time.perf_counter() - started
    return report


class _Bytes:
    """A file-like ``read(n)`` over bytes in memory, ``CHUNK`` at a time."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._data[self._pos:self._pos + CHUNK]
        self._pos += len(chunk)
        return chunk


def build_report(raw: dict[str, list[dict[str, Any]]], *, n: int, rounds: int, body_bytes: int,
                 setup_seconds: float) -> dict[str, Any]:
    figures: dict[str, Any] = {"body.bytes": body_bytes, "setup.seconds": setup_seconds}
    stats: dict[str, Any] = {}
    for phase in PHASES:
        seconds = stats[phase] = _common.summarize([r["seconds"] for r in raw[phase]])
        figures[f"{phase}.seconds"] = seconds.median
        figures[f"{phase}.entities_per_s"] = n / seconds.median
        figures[f"{phase}.us_per_entity"] = seconds.median / n * 1e6
    ratios = {f"{c}.pipe_vs_baseline": figures[f"{c}.pipe.entities_per_s"] / figures[f"{c}.baseline.entities_per_s"]
              for c in CONNECTORS}
    ratio_rounds = {f"{c}.pipe_vs_baseline": [b["seconds"] / p["seconds"] for p, b in
                                              zip(raw[f"{c}.pipe"], raw[f"{c}.baseline"], strict=True)]
                    for c in CONNECTORS}
    rules = {"source": "json source pipe entities/s / bare httpx GET + iter_json_entities + Dataset.write >= 0.70",
             "sink": "json sink pipe entities/s / bare httpx POST loop of 1000-entity arrays >= 0.70"}
    targets = {f"{c}_throughput": {"value": ratios[f"{c}.pipe_vs_baseline"], "target": TARGET, "rule": rules[c]}
               for c in CONNECTORS}
    for t in targets.values():
        t["met"] = bool(t["value"] >= t["target"])
    notes = [
        "server: http.server.ThreadingHTTPServer (HTTP/1.1 keep-alive) in a daemon thread of the bench process, "
        "so it shares the GIL with the measured code, connector and baseline alike",
        "source: timed from build_runner to the end of run(), into a fresh dataset each round; sink: run() only, "
        "a fresh pipe id each round (so each run is a full run with its closing is_last request)",
    ]
    return {
        "benchmark": "connectors",
        "config": {"n": n, "rounds": rounds, "batch": BATCH, "chunk": CHUNK},
        "environment": _common.environment(),
        "figures": figures,
        "ratios": ratios,
        "ratio_rounds": ratio_rounds,
        "targets": targets,
        "stats": stats,
        "raw": raw,
        "notes": notes,
    }


def format_report(report: dict[str, Any]) -> str:
    f, ratios, targets, stats, cfg = (report[k] for k in ("figures", "ratios", "targets", "stats", "config"))
    n = cfg["n"]

    def rate(phase: str) -> str:
        s = stats[phase]
        return f"{n / s['median']:,.0f}/s ({n / s['max']:,.0f}-{n / s['min']:,.0f})"

    def met(name: str) -> str:
        return "yes" if targets[name]["met"] else "NO"

    rows = [
        [f"json source pipe, GET {f['body.bytes'] / MB:,.1f} MB -> dataset", rate("source.pipe"),
         f"httpx + iter_json_entities + write {rate('source.baseline')}", f"{ratios['source.pipe_vs_baseline']:.2f}",
         f">= {TARGET:.2f}", met("source_throughput")],
        [f"json sink pipe, dataset -> POST batches of {cfg['batch']}", rate("sink.pipe"),
         f"httpx POST loop {rate('sink.baseline')}", f"{ratios['sink.pipe_vs_baseline']:.2f}",
         f">= {TARGET:.2f}", met("sink_throughput")],
    ]
    out = [f"{n:,} entities, batches of {cfg['batch']}, median (min-max) of {cfg['rounds']} rounds; "
           "entities/s, local ThreadingHTTPServer", ""]
    out.append(_common.format_table(("measurement", "figure", "baseline", "ratio", "target", "met?"), rows))
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_N:,} entities and 1 round instead of {FULL_N:,}")
    ap.add_argument("--n", type=int, default=None, help="entity count (overrides --quick)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds (default 3, 1 with --quick)")
    ap.add_argument("--json", metavar="OUT", default=None, help="write every figure and ratio to OUT ('-': stdout)")
    ap.add_argument("--dir", default=None, help="parent of the temp dir (default: the system's)")
    args = ap.parse_args(argv)
    n = args.n or (QUICK_N if args.quick else FULL_N)
    rounds = args.rounds or (1 if args.quick else 3)
    if n < 1 or rounds < 1:
        ap.error("--n and --rounds must be at least 1")
    report = measure(n, rounds=rounds, scratch=args.dir)
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
