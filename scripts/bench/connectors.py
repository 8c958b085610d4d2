#!/usr/bin/env python3
"""Benchmark of the HTTP connectors, the ``json`` source and the ``json`` sink, against bare ``httpx`` loops doing
the same work, and of a running node's JSON Push receiver and JSON Pull publisher against parsing and storing
(reading and rendering) the same bytes in-process, each figure beside its baseline measured in the same run.

    .venv/bin/python scripts/bench/connectors.py --quick                       # 10k entities, 1 round
    .venv/bin/python scripts/bench/connectors.py --json bench-connectors.json  # 100k entities, 3 rounds

The web server: a ``http.server.ThreadingHTTPServer`` on 127.0.0.1 (HTTP/1.1 keep-alive, Content-Length always
sent) in a daemon thread of this process. ``GET /entities.json`` answers a pre-rendered JSON array of N
entities (``_common.entities``, about 320 bytes each); ``POST /receiver`` reads and discards the body and
answers 200 ``{}``.

The node: a real ``sesamd serve`` daemon (``sesamd.testing.serve_process``: a subprocess on 127.0.0.1, its own
data directory under the temp dir), an admin token minted with the data directory's key (``Daemon.headers``,
as ``scripts/bench/api.py`` does), one keep-alive ``httpx.Client`` with that token for all its requests. Its
config, uploaded once with ``PUT /api/config``::

    [{"_id": "people-in", "type": "pipe", "source": {"type": "http_endpoint"}},
     {"_id": "people-out", "type": "pipe", "source": {"type": "dataset", "dataset": "people-in"},
      "sink": {"type": "http_endpoint"}}]

then, not timed, a warm-up push of the first batch and a pull of it (imports, the receiver's and the
publisher's first requests).

The bench process is tuned as ``sesamd serve`` tunes itself (``sesamd._process``): ``tune_process()`` first
thing in ``main`` (the collector's threshold; not when ``measure`` is called by itself, as the tests do),
``freeze_startup()`` after the setup (undone at the end) (``gc.freeze``: the
modules imported so far, Quart and Hypercorn among them through ``sesamd.testing``, no longer walked by every
full collection, which made the json source pipe about 30 % slower). Every phase, measured and baseline,
runs with the same tuning, and the daemon with its own.

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
``receiver.push``
    JSON Push into the node: the N entities as JSON arrays of 1000 (``orjson`` bytes rendered before the
    rounds, the same bytes every round), POSTed one after the other to ``/api/receivers/people-in/entities``
    by the node client, timed until the last POST returned (the receiver answers after its write is
    committed). Plain incremental pushes: no sequence parameters (no full sync, so no deletion tracking).
    Before each round, not timed, ``DELETE /api/datasets/people-in``, so every round writes N new entities
    into a fresh dataset as the baseline does. Checked after: ``GET /api/datasets/people-in/entities?
    history=false`` holds N entities with N distinct ids.
``receiver.baseline``
    The same bodies parsed in-process with the upload validator the receiver uses
    (``sesamd._entities_upload.validated_list``) and written with ``Dataset.write``, a body a batch, into a
    fresh dataset of this process (``actors.Datasets``, opened in the timing, as ``source.baseline`` does).
``publisher.pull``
    JSON Pull from the node: one ``GET /api/publishers/people-out/entities`` (no ``since``, no ``limit``: the
    whole array) streamed by the node client (64 KiB chunks) and parsed with ``storage.iter_json_entities``,
    as the ``json`` source does, counting N entities; right after the round's push, so ``people-in`` holds
    exactly N versions.
``publisher.baseline``
    The same entities read in-process from the dataset ``receiver.baseline`` wrote in the same round (N
    versions, as ``people-in``): ``Dataset.iter_entities(history=False)`` (what the publisher's dataset
    source reads: the stored bytes, parsed), rendered as one JSON array with ``storage.dumps`` (what the
    ``http_endpoint`` sink renders) and parsed back with ``storage.iter_json_entities`` (64 KiB chunks):
    the server's and the client's work without the HTTP between them (and without the publisher's worker
    thread hops: it renders its pipe's batches of 100, the default ``batch_size``). The pull runs the two
    halves in two processes at once (the daemon renders while the bench parses), the baseline one after the
    other in one, so the ratio can exceed 1.

Targets: json source / sink entities/s >= 70 % of its baseline's; receiver push and publisher pull
entities/s >= 50 % of theirs. Median of ``--rounds`` rounds (default 3).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import _common  # before the project's packages: it puts the project root first on sys.path
import httpx
import orjson
import trio

import actors
import storage
from actors.components import build_system
from sesamd._entities_upload import validated_list
from sesamd._process import freeze_startup, tune_process
from sesamd.testing import Daemon, serve_process

QUICK_N = 10_000
FULL_N = 100_000
BATCH = _common.BATCH  # the pipes' batch_size, the sink's batch_size and the baselines' batch
CHUNK = 1 << 16  # bytes per read of a streamed body (what the json source uses)
TARGET = 0.70  # json connector entities/s / baseline entities/s
NODE_TARGET = 0.50  # receiver push / publisher pull entities/s / in-process baseline entities/s
MB = 1_000_000

# each connector's measured kind (beside its "baseline") and target
MEASURED = {"source": "pipe", "sink": "pipe", "receiver": "push", "publisher": "pull"}
TARGET_OF = {"source": TARGET, "sink": TARGET, "receiver": NODE_TARGET, "publisher": NODE_TARGET}
CONNECTORS = tuple(MEASURED)
PHASES = tuple(f"{c}.{k}" for c, m in MEASURED.items() for k in (m, "baseline"))
PEOPLE = "people"
RECEIVER = "people-in"
PUBLISHER = "people-out"
NODE_CONFIG = [{"_id": RECEIVER, "type": "pipe", "source": {"type": "http_endpoint"}},
               {"_id": PUBLISHER, "type": "pipe", "source": {"type": "dataset", "dataset": RECEIVER},
                "sink": {"type": "http_endpoint"}}]
NODE_TIMEOUT = httpx.Timeout(600.0, connect=30.0)
JSON_HEADERS = {"Content-Type": "application/json"}

# every named figure, ratio and target of the JSON output (the tests check them)
FIGURES = (*(f"{p}.{f}" for p in PHASES for f in ("entities_per_s", "us_per_entity", "seconds")),
           "body.bytes", "setup.seconds", "receiver.posts", "publisher.bytes", "daemon.seconds")
RATIOS = tuple(f"{c}.{m}_vs_baseline" for c, m in MEASURED.items())
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
    """A file-like ``read(n)`` over a streamed response body; ``bytes``: how many it has read."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.iter_bytes(CHUNK)
        self.bytes = 0

    def read(self, size: int = -1) -> bytes:
        chunk = next(self._chunks, b"")
        self.bytes += len(chunk)
        return chunk


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


# -- the node: receiver and publisher ----------------------------------------------------------------


def _ok(response: httpx.Response, what: str, *codes: int) -> httpx.Response:
    if response.status_code not in (codes or (200,)):
        raise RuntimeError(f"{what}: {response.status_code} {response.text[:500]}")
    return response


@contextlib.contextmanager
def node(root: Path, warm_up: bytes) -> Iterator[tuple[Daemon, httpx.Client]]:
    """A ``sesamd serve`` on ``root`` with ``NODE_CONFIG`` and a client with its admin token, warmed up with a
    push of ``warm_up`` and a pull; the daemon is stopped (and must exit cleanly) when the block ends."""
    with serve_process(root) as daemon:
        with httpx.Client(headers=daemon.headers, timeout=NODE_TIMEOUT) as client:
            answer = _ok(client.put(f"{daemon.url}/config", json=NODE_CONFIG), "PUT /api/config").json()
            if answer.get("validation_errors"):
                raise RuntimeError(f"PUT /api/config: {answer['validation_errors']}")
            _ok(client.post(f"{daemon.url}/receivers/{RECEIVER}/entities", content=warm_up, headers=JSON_HEADERS),
                "warm-up push")
            publisher_pull(client, daemon.url)
            yield daemon, client
        code = daemon.terminate()
    if code != 0:
        raise RuntimeError(f"sesamd serve exited with {code}:\n{daemon.log.read_text()[-2000:]}")


def receiver_push(client: httpx.Client, url: str, bodies: Sequence[bytes]) -> dict[str, Any]:
    """POST the bodies into a fresh ``people-in`` (deleted first, not timed); counts what it then holds."""
    _ok(client.delete(f"{url}/datasets/{RECEIVER}"), f"DELETE /api/datasets/{RECEIVER}", 200, 404)
    push = f"{url}/receivers/{RECEIVER}/entities"
    started = time.perf_counter()
    for body in bodies:
        response = client.post(push, content=body, headers=JSON_HEADERS)
        if response.status_code != 200:
            raise RuntimeError(f"POST {push}: {response.status_code} {response.text[:500]}")
    seconds = time.perf_counter() - started
    stored = orjson.loads(_ok(client.get(f"{url}/datasets/{RECEIVER}/entities", params={"history": "false"}),
                              f"GET /api/datasets/{RECEIVER}/entities").content)
    ids = len({e["_id"] for e in stored})
    if ids != len(stored):
        raise RuntimeError(f"{RECEIVER}: {len(stored):,} entities but {ids:,} ids")
    return {"seconds": seconds, "changes": len(stored), "posts": len(bodies)}


def receiver_baseline(datasets: actors.Datasets, bodies: Sequence[bytes], name: str) -> dict[str, Any]:
    started = time.perf_counter()
    dataset = datasets.open(name)
    changes = 0
    for body in bodies:
        changes += dataset.write(validated_list(body)).appended
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "changes": changes, "posts": 0}


def publisher_pull(client: httpx.Client, url: str) -> dict[str, Any]:
    started = time.perf_counter()
    count = 0
    with client.stream("GET", f"{url}/publishers/{PUBLISHER}/entities") as response:
        if response.status_code != 200:
            raise RuntimeError(f"GET /api/publishers/{PUBLISHER}/entities: {response.status_code} "
                               f"{response.read()[:500]!r}")
        stream = _Stream(response)
        for _entity, _line in storage.iter_json_entities(stream, chunk_size=CHUNK):
            count += 1
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "changes": count, "bytes": stream.bytes}


def publisher_baseline(datasets: actors.Datasets, name: str) -> dict[str, Any]:
    started = time.perf_counter()
    dataset = datasets.open(name, create=False)
    dumps = storage.dumps
    body = b"[" + b",".join(dumps(e) for e in dataset.iter_entities(history=False)) + b"]"
    count = 0
    for _entity, _line in storage.iter_json_entities(_Bytes(body), chunk_size=CHUNK):
        count += 1
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "changes": count, "bytes": len(body)}


# -- the run ------------------------------------------------------------------------------------------


def render_bodies(n: int) -> tuple[bytes, list[bytes]]:
    """The N entities as one JSON array (the web server's) and as JSON arrays of ``BATCH`` (the pushes')."""
    people = list(_common.entities(n))
    return orjson.dumps(people), [orjson.dumps(people[s:s + BATCH]) for s in range(0, n, BATCH)]


def _check(phase: str, got: dict[str, Any], n: int) -> None:
    if got["changes"] != n:
        raise RuntimeError(f"{phase}: {got['changes']:,} entities, expected {n:,}")
    if phase.startswith(("sink.", "receiver.push")) and got["posts"] < -(-n // BATCH):
        raise RuntimeError(f"{phase}: the receiver got {got['posts']:,} POSTs, expected {-(-n // BATCH):,}")


def measure(n: int, *, rounds: int = 3, scratch: str | None = None,
            log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True)) -> dict[str, Any]:
    """Run the whole benchmark on ``n`` entities; returns the report (``FIGURES``, ``RATIOS``, ``TARGETS``)."""
    started = time.perf_counter()
    body, bodies = render_bodies(n)
    raw: dict[str, list[dict[str, Any]]] = {p: [] for p in PHASES}
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(_common.scratch_dir("sesamd-bench-connectors-", parent=scratch))
        web = stack.enter_context(WebServer(body))
        datasets = actors.Datasets(str(tmp / "data"))
        stack.callback(datasets.close_all)
        system = build_system({"_id": "web", "type": "system:url",
                               "url_pattern": f"http://127.0.0.1:{web.port}/%s"})
        trio.run(system.open)
        stack.callback(trio.run, system.close)
        client = stack.enter_context(httpx.Client())
        t0 = time.perf_counter()
        daemon, node_client = stack.enter_context(node(tmp / "node", bodies[0]))
        daemon_seconds = time.perf_counter() - t0
        log(f"node: sesamd serve at {daemon.url}, config and warm-up in {daemon_seconds:.1f} s")
        t0 = time.perf_counter()
        people = datasets.open(PEOPLE)
        for batch in bodies:
            people.write(storage.parse_json(batch))
        people.set_populated(True)
        setup_seconds = time.perf_counter() - t0
        log(f"setup: {n:,} entities ({len(body) / MB:,.1f} MB) written in {setup_seconds:.1f} s")
        freeze_startup()  # as sesamd serve does after its start-up: the modules out of the collector's reach
        stack.callback(gc.unfreeze)
        posts = web.received
        for r in range(rounds):
            phases: dict[str, Callable[[], dict[str, Any]]] = {
                "source.pipe": lambda r=r: source_pipe(datasets, system, f"pull-{r}"),
                "source.baseline": lambda r=r: source_baseline(datasets, client, web.url("entities.json"),
                                                               f"base-{r}"),
                "sink.pipe": lambda r=r: sink_pipe(datasets, system, f"push-{r}"),
                "sink.baseline": lambda: sink_baseline(datasets, client, web.url("receiver")),
                "receiver.push": lambda: receiver_push(node_client, daemon.url, bodies),
                "receiver.baseline": lambda r=r: receiver_baseline(datasets, bodies, f"received-{r}"),
                "publisher.pull": lambda: publisher_pull(node_client, daemon.url),
                "publisher.baseline": lambda r=r: publisher_baseline(datasets, f"received-{r}"),
            }
            for connector, measured in MEASURED.items():
                kinds = (measured, "baseline")
                for kind in (kinds if r % 2 == 0 else kinds[::-1]):
                    phase = f"{connector}.{kind}"
                    got = phases[phase]()
                    got.setdefault("posts", web.received - posts)
                    posts = web.received
                    _check(phase, got, n)
                    raw[phase].append(got)
            log(f"round {r + 1}/{rounds}: " + ", ".join(f"{p} {n / raw[p][-1]['seconds']:,.0f}/s" for p in PHASES))
    report = build_report(raw, n=n, rounds=rounds, body_bytes=len(body), setup_seconds=setup_seconds,
                          daemon_seconds=daemon_seconds)
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
                 setup_seconds: float, daemon_seconds: float) -> dict[str, Any]:
    figures: dict[str, Any] = {"body.bytes": body_bytes, "setup.seconds": setup_seconds,
                               "receiver.posts": raw["receiver.push"][0]["posts"],
                               "publisher.bytes": raw["publisher.pull"][0]["bytes"], "daemon.seconds": daemon_seconds}
    stats: dict[str, Any] = {}
    for phase in PHASES:
        seconds = stats[phase] = _common.summarize([r["seconds"] for r in raw[phase]])
        figures[f"{phase}.seconds"] = seconds.median
        figures[f"{phase}.entities_per_s"] = n / seconds.median
        figures[f"{phase}.us_per_entity"] = seconds.median / n * 1e6
    ratios = {f"{c}.{m}_vs_baseline": figures[f"{c}.{m}.entities_per_s"] / figures[f"{c}.baseline.entities_per_s"]
              for c, m in MEASURED.items()}
    ratio_rounds = {f"{c}.{m}_vs_baseline": [b["seconds"] / p["seconds"] for p, b in
                                             zip(raw[f"{c}.{m}"], raw[f"{c}.baseline"], strict=True)]
                    for c, m in MEASURED.items()}
    rules = {"source": "json source pipe entities/s / bare httpx GET + iter_json_entities + Dataset.write >= 0.70",
             "sink": "json sink pipe entities/s / bare httpx POST loop of 1000-entity arrays >= 0.70",
             "receiver": "JSON Push into sesamd serve's receiver, 1000-entity arrays, entities/s / the same bytes "
                         "through validated_list + Dataset.write in-process >= 0.50",
             "publisher": "JSON Pull of sesamd serve's publisher, one streamed GET + iter_json_entities, entities/s "
                          "/ Dataset.iter_entities + storage.dumps array + iter_json_entities in-process >= 0.50"}
    targets = {f"{c}_throughput": {"value": ratios[f"{c}.{m}_vs_baseline"], "target": TARGET_OF[c], "rule": rules[c]}
               for c, m in MEASURED.items()}
    for t in targets.values():
        t["met"] = bool(t["value"] >= t["target"])
    notes = [
        "server: http.server.ThreadingHTTPServer (HTTP/1.1 keep-alive) in a daemon thread of the bench process, "
        "so it shares the GIL with the measured code, connector and baseline alike",
        "source: timed from build_runner to the end of run(), into a fresh dataset each round; sink: run() only, "
        "a fresh pipe id each round (so each run is a full run with its closing is_last request)",
        "receiver / publisher: a sesamd serve subprocess (its own process, so not sharing the bench's GIL; 2 "
        "processes on the machine's cores), admin token, one keep-alive httpx client; push: incremental POSTs "
        "(no sequence parameters) into people-in, deleted before each round; pull: one GET of the whole array; "
        "baselines in the bench process on a dataset of its own with the same N entities",
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

    def row(connector: str, label: str, baseline: str) -> list[str]:
        measured, target = MEASURED[connector], targets[f"{connector}_throughput"]
        return [label, rate(f"{connector}.{measured}"), f"{baseline} {rate(f'{connector}.baseline')}",
                f"{ratios[f'{connector}.{measured}_vs_baseline']:.2f}", f">= {target['target']:.2f}",
                "yes" if target["met"] else "NO"]

    rows = [
        row("source", f"json source pipe, GET {f['body.bytes'] / MB:,.1f} MB -> dataset",
            "httpx + iter_json_entities + write"),
        row("sink", f"json sink pipe, dataset -> POST batches of {cfg['batch']}", "httpx POST loop"),
        row("receiver", f"receiver push, {f['receiver.posts']:,} POSTs of {cfg['batch']} -> sesamd serve",
            "validated_list + write"),
        row("publisher", f"publisher pull, GET {f['publisher.bytes'] / MB:,.1f} MB <- sesamd serve",
            "iter_entities + dumps + parse"),
    ]
    out = [f"{n:,} entities, batches of {cfg['batch']}, median (min-max) of {cfg['rounds']} rounds; "
           "entities/s, local ThreadingHTTPServer and sesamd serve", ""]
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
    tune_process()  # the collector's threshold (and malloc arenas) as in sesamd serve, for every phase alike
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
