"""The connectors benchmark (scripts/bench/connectors.py) at a tiny size: every phase runs (the receiver and the
publisher against a real ``sesamd serve``), its checks hold, the JSON names every figure.

No timing assertions: the figures are only checked to be there.
"""

from __future__ import annotations

import json
from pathlib import Path

from sesamd.testing import load_bench_script

N = 300


bench = load_bench_script("connectors")


def _check_report(report: dict) -> None:
    data = json.loads(json.dumps(report, default=str))  # it is JSON as it is
    assert data["config"]["n"] == N
    for name in bench.FIGURES:
        assert name in data["figures"], name
    for phase in bench.PHASES:
        assert data["figures"][f"{phase}.entities_per_s"] > 0, phase
        assert data["figures"][f"{phase}.seconds"] > 0, phase
    for name in bench.RATIOS:
        assert data["ratios"][name] is not None and data["ratios"][name] > 0, name
    for name in bench.TARGETS:
        target = data["targets"][name]
        assert {"value", "target", "met", "rule"} <= set(target), name
        assert isinstance(target["met"], bool)
    for phase in ("sink.pipe", "sink.baseline"):
        assert all(r["posts"] >= 1 for r in data["raw"][phase])  # the receiver got the batches
    assert set(bench.PHASES) >= {"receiver.push", "receiver.baseline", "publisher.pull", "publisher.baseline"}
    assert set(bench.RATIOS) >= {"receiver.push_vs_baseline", "publisher.pull_vs_baseline"}
    assert set(bench.TARGETS) >= {"receiver_throughput", "publisher_throughput"}
    for name in ("receiver_throughput", "publisher_throughput"):
        assert data["targets"][name]["target"] == 0.50, name
    # every push and pull moved the N entities (the bench raises otherwise); the node got one POST a batch
    for phase in ("receiver.push", "receiver.baseline", "publisher.pull", "publisher.baseline"):
        assert all(r["changes"] == N for r in data["raw"][phase]), phase
    assert all(r["posts"] == -(-N // bench.BATCH) for r in data["raw"]["receiver.push"])
    assert data["figures"]["receiver.posts"] == -(-N // bench.BATCH)
    pulled = data["figures"]["publisher.bytes"]
    assert pulled > N * 100 and all(r["bytes"] > N * 100 for r in data["raw"]["publisher.baseline"])
    table = bench.format_report(report)
    for label in ("json source pipe", "json sink pipe", "receiver push", "publisher pull", "sesamd serve",
                  "baseline", "target", "met?"):
        assert label in table


def test_bodies_are_the_entities_in_batches() -> None:
    body, bodies = bench.render_bodies(2 * bench.BATCH + 5)
    assert [len(bench.orjson.loads(b)) for b in bodies] == [bench.BATCH, bench.BATCH, 5]
    assert bench.orjson.loads(body) == [e for b in bodies for e in bench.orjson.loads(b)]


def test_benchmark_in_process_names_every_figure(tmp_path: Path) -> None:
    report = bench.measure(N, rounds=1, scratch=str(tmp_path), log=lambda s: None)
    _check_report(report)


def test_cli_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "connectors.json"
    code = bench.main(["--n", str(N), "--rounds", "1", "--dir", str(tmp_path), "--json", str(out)])
    assert code in (0, 1)  # 1: a target not met, which a tiny run may well be
    report = json.loads(out.read_text())
    _check_report(report)
    assert report["config"]["rounds"] == 1
    assert report["figures"]["body.bytes"] > N * 100
