#!/usr/bin/env python3
"""Benchmark of ``sesam test`` on a generated Sesam project of many pipes, against the same work done by
bare API calls, both against one real ``sesamd serve`` in the same run.

    .venv/bin/python scripts/bench/client.py --quick               # 60 pipes, 1 round
    .venv/bin/python scripts/bench/client.py --json bench-client.json   # 300 pipes, 2 rounds

The project (:func:`generate_project`), a fifth of its pipes of each kind, in the layout of a sesam-py project
(``pipes/``, ``node-metadata.conf.json``, ``test-env.json``, ``expected/``):

``in-<i>``
    input pipes: an embedded source of 40 customers each (``_id`` ``c<i>-<k>``, a ``group`` and a ``score``).
``prep-<i>``
    from ``in-<i>``: DTL that adds properties and hops into ``in-<i-1>`` (the customer of the same number one
    input back), so dependency tracking links neighbouring inputs.
``agg-<i>``
    from ``prep-<i>``: a hop into ``agg-<i-1>`` (a chain: each pass settles one more link, the way real
    projects need several passes), counting what it finds.
``glob-<i>``
    a "global": a ``merge`` source (version 2) of ``agg-<i>`` and ``prep-<i>`` on ``_id``.
``out-<i>``
    endpoint pipes (``http_endpoint`` sink) from ``glob-<i>``: what ``sesam test`` verifies, one
    ``expected/out-<i>.test.json`` each.

Untimed setup: the project's ``expected/`` files are made once with ``sesam update`` after a ``sesam run``.

Measurements, per round:

``sesam.test``
    ``sesam -node URL -jwt TOKEN test`` as a subprocess in the project directory: upload (zip), run all pipes
    to stable (the node's internal scheduler), verify every endpoint pipe against ``expected/``.
``api.baseline``
    The same three steps by a bare ``httpx`` client: ``PUT /api/config`` with the same zip,
    ``POST /api/pipes/run-all-pipes`` (synchronous, the parameters the client sends), then
    ``GET /api/pipes/out-<i>/entities`` for every endpoint pipe, compared with its expected file after
    dropping underscore properties and sorting by ``_id``.

The ratio is baseline time over client time (1.0: the client adds nothing). The issue's target is that a
300-pipe project's ``sesam test`` finishes in minutes; the table's target column says 300 s.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import _common  # before the project's packages: it puts the project root first on sys.path
import httpx

from sesamd.testing import Daemon, serve_process

QUICK_PIPES = 60
FULL_PIPES = 300
KINDS = ("in", "prep", "agg", "glob", "out")
CUSTOMERS = 40  # entities per input pipe
TARGET_SECONDS = 300.0
RUN_PARAMS = {"extra_zero_runs": "2", "max_runs": "100", "max_run_time": "900", "delete_input_datasets": "True",
              "reset_pipes_and_delete_sink_datasets": "True", "check_input_pipes": "False"}
FIGURES = ("sesam.test", "api.baseline")


# -- the project ---------------------------------------------------------------------------------------------


def _pipe(pipe_id: str, source: dict[str, Any], rules: list[Any] | None = None,
          sink: dict[str, Any] | None = None) -> dict[str, Any]:
    pipe: dict[str, Any] = {"_id": pipe_id, "type": "pipe", "source": source}
    if rules is not None:
        pipe["transform"] = {"type": "dtl", "rules": {"default": rules}}
    if sink is not None:
        pipe["sink"] = sink
    return pipe


def project_pipes(count: int) -> list[dict[str, Any]]:
    """``count`` pipes (a multiple of 5), a fifth of each kind (see the module docstring)."""
    if count % len(KINDS) or count < len(KINDS):
        raise ValueError(f"the pipe count must be a positive multiple of {len(KINDS)}")
    n = count // len(KINDS)
    pipes: list[dict[str, Any]] = []
    for i in range(n):
        entities = [{"_id": f"c{i}-{k}", "number": k, "group": f"g{k % 4}", "score": (k * 7 + i) % 100}
                    for k in range(CUSTOMERS)]
        pipes.append(_pipe(f"in-{i}", {"type": "embedded", "entities": entities}))
    for i in range(n):
        back = (i - 1) % n
        pipe = _pipe(f"prep-{i}", {"type": "dataset", "dataset": f"in-{i}"}, [
            ["copy", "*"],
            ["add", "label", ["concat", ["list", "_S.group", "-", ["string", "_S.score"]]]],
            ["add", "neighbour", ["first", ["apply-hops", "pick", {
                "datasets": [f"in-{back} n"], "where": [["eq", "_S.number", "n.number"]]}]]],
        ])
        pipe["transform"]["rules"]["pick"] = [["copy", "_id"], ["copy", "score"]]
        pipes.append(pipe)
    for i in range(n):
        chain = [["copy", "*"], ["add", "rank", ["gt", "_S.score", 50]]]
        if i:
            chain.append(["add", "previous", ["count", ["hops", {
                "datasets": [f"agg-{i - 1} p"], "where": [["eq", "_S.group", "p.group"]]}]]])
        pipes.append(_pipe(f"agg-{i}", {"type": "dataset", "dataset": f"prep-{i}"}, chain))
    for i in range(n):
        pipes.append(_pipe(f"glob-{i}", {"type": "merge", "datasets": [f"agg-{i} a", f"prep-{i} p"],
                                         "equality": [["eq", "a._id", "p._id"]], "identity": "first",
                                         "version": 2}))
    for i in range(n):
        pipes.append(_pipe(f"out-{i}", {"type": "dataset", "dataset": f"glob-{i}"},
                           [["copy", "*"], ["remove", "$ids"]], {"type": "http_endpoint"}))
    return pipes


def generate_project(directory: Path, count: int) -> list[str]:
    """Write a sesam-py project of ``count`` pipes under ``directory``; the ids of its endpoint pipes."""
    (directory / "pipes").mkdir(parents=True, exist_ok=True)
    (directory / "expected").mkdir(exist_ok=True)
    (directory / "node-metadata.conf.json").write_text(json.dumps({"_id": "node", "type": "metadata"}, indent=2)
                                                       + "\n")
    (directory / "test-env.json").write_text("{}\n")
    endpoints = []
    for pipe in project_pipes(count):
        (directory / "pipes" / f"{pipe['_id']}.conf.json").write_text(json.dumps(pipe, indent=2) + "\n")
        if pipe["_id"].startswith("out-"):
            endpoints.append(pipe["_id"])
    return endpoints


def config_zip(directory: Path) -> bytes:
    """The project's config as the upload zip (``pipes/``, ``node-metadata.conf.json``)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted([directory / "node-metadata.conf.json", *(directory / "pipes").glob("*.conf.json")]):
            archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()


# -- the measurements ----------------------------------------------------------------------------------------


def sesam(daemon: Daemon, project: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """Run the ``sesam`` client in ``project``; its completed process (a non-zero exit is an error)."""
    token = daemon.headers["Authorization"].split(" ", 1)[1]
    argv = [sys.executable, "-m", "sesamd.client._cli", "-node", daemon.url, "-jwt", token, *args]
    done = subprocess.run(argv, cwd=project, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"sesam {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}"
                           f"\n{done.stderr[-3000:]}")
    return done


def _normalised(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not k.startswith("_") or k == "_id"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    kept = [strip(e) for e in entities if e.get("_deleted") is not True]
    return sorted(kept, key=lambda e: json.dumps(e, sort_keys=True))


def api_baseline(daemon: Daemon, project: Path, endpoints: Sequence[str]) -> None:
    """Upload, run to stable and compare by bare API calls (raises when an output differs)."""
    with httpx.Client(base_url=daemon.url, headers=daemon.headers, timeout=1800) as api:
        api.put("/config", params={"force": "true"}, content=config_zip(project),
                headers={"Content-Type": "application/zip"}).raise_for_status()
        answer = api.post("/pipes/run-all-pipes", params=RUN_PARAMS)
        answer.raise_for_status()
        if answer.json().get("status") != "success":
            raise RuntimeError(f"run-all-pipes: {answer.text[:2000]}")
        for pipe_id in endpoints:
            current = api.get(f"/pipes/{pipe_id}/entities")
            current.raise_for_status()
            expected = json.loads((project / "expected" / f"{pipe_id}.json").read_text())
            if _normalised(current.json()) != _normalised(expected):
                raise RuntimeError(f"api.baseline: {pipe_id} differs from its expected output")


def measure(count: int, *, rounds: int = 2, scratch: str | None = None,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """Time ``sesam test`` and the bare-API baseline ``rounds`` times on a ``count``-pipe project."""
    times: dict[str, list[float]] = {name: [] for name in FIGURES}
    with _common.scratch_dir(parent=scratch) as tmp:
        project = tmp / "project"
        endpoints = generate_project(project, count)
        with serve_process(tmp / "node") as daemon:
            started = time.perf_counter()
            sesam(daemon, project, "upload")
            sesam(daemon, project, "run")
            sesam(daemon, project, "update")
            log(f"setup: {count} pipes uploaded, run and their expected output written in "
                f"{time.perf_counter() - started:.1f} s")
            for round_no in range(rounds):
                phases: list[tuple[str, Callable[[], Any]]] = [
                    ("sesam.test", lambda: sesam(daemon, project, "test")),
                    ("api.baseline", lambda: api_baseline(daemon, project, endpoints))]
                if round_no % 2:
                    phases.reverse()
                for name, phase in phases:
                    started = time.perf_counter()
                    phase()
                    times[name].append(time.perf_counter() - started)
                log(f"round {round_no + 1}/{rounds}: " + ", ".join(f"{n} {times[n][-1]:.1f} s" for n in FIGURES))
    figures = {name: statistics.median(values) for name, values in times.items()}
    return {"config": {"pipes": count, "endpoints": count // len(KINDS), "rounds": rounds},
            "figures": figures, "rounds": times, "environment": _common.environment()}


def table(report: dict[str, Any]) -> str:
    test, base = report["figures"]["sesam.test"], report["figures"]["api.baseline"]
    spread = report["rounds"]
    rows = [("sesam test, generated project",
             f"{test:.1f} s ({min(spread['sesam.test']):.1f}-{max(spread['sesam.test']):.1f})",
             f"bare API calls {base:.1f} s", f"{base / test:.2f}", f"<= {TARGET_SECONDS:.0f} s",
             "yes" if test <= TARGET_SECONDS else "no")]
    config = report["config"]
    head = f"{config['pipes']} pipes ({config['endpoints']} endpoint pipes verified), median of {config['rounds']}"
    return head + "\n\n" + _common.format_table(
        ["measurement", "figure", "baseline", "ratio", "target", "met?"], rows)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_PIPES} pipes, 1 round")
    ap.add_argument("--pipes", type=int, default=None, help="pipes in the generated project (a multiple of 5)")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--json", help="write the report here too")
    args = ap.parse_args(argv)
    count = args.pipes or (QUICK_PIPES if args.quick else FULL_PIPES)
    rounds = args.rounds or (1 if args.quick else 2)
    started = time.perf_counter()
    report = measure(count, rounds=rounds)
    print(table(report))
    print(f"\nwall time {time.perf_counter() - started:.0f} s")
    if args.json:
        _common.write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
