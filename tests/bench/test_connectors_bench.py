"""The connectors benchmark (scripts/bench/connectors.py) at a tiny size: every phase runs, the JSON names every
figure.

No timing assertions: the figures are only checked to be there.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench" / "connectors.py"
N = 300


def _load():
    name = "sesamd_bench_connectors"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, _SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        saved = list(sys.path)
        try:
            spec.loader.exec_module(module)  # it puts the project root and scripts/bench on sys.path
        finally:
            sys.path[:] = saved  # scripts/bench holds dtl.py and storage.py: keep it off the path after
    return module


bench = _load()


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
    table = bench.format_report(report)
    for label in ("json source pipe", "json sink pipe", "baseline", "target", "met?"):
        assert label in table


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
