"""The pipe benchmark (scripts/bench/pipe.py) at a tiny size: every phase runs, the JSON names every figure.

No timing assertions: the figures are only checked to be there.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench" / "pipe.py"
N = 300


def _load():
    name = "sesamd_bench_pipe"
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
    text = json.dumps(report, default=str)  # it is JSON as it is
    data = json.loads(text)
    for name in bench.FIGURES:
        assert name in data["figures"], name
    for name in bench.RATIOS:
        assert data["ratios"][name] is not None and data["ratios"][name] > 0, name
    for name in bench.TARGETS:
        target = data["targets"][name]
        assert {"value", "target", "met", "rule"} <= set(target), name
        assert isinstance(target["met"], bool)
    assert data["config"]["n"] == N
    for name in ("flat.pump", "flat.baseline", "hop.pump", "hop.baseline"):
        assert data["figures"][f"{name}.entities_per_s"] > 0
        assert data["figures"][f"{name}.peak_rss"] > 0
    assert data["figures"]["deps.incremental.seconds"] > 0
    assert data["checks"]["deps"] and all(c["changes"] == 1 for c in data["checks"]["deps"])
    table = bench.format_report(report)
    for label in ("baseline", "pump", "change -> commit", "peak RSS"):
        assert label in table


@pytest.mark.parametrize("via", ["node", "thread"])
def test_benchmark_in_process_names_every_figure(tmp_path: Path, via: str) -> None:
    report = bench.measure(N, rounds=1, via=via, isolate=False, scratch=str(tmp_path), changes=2,
                           log=lambda s: None)
    _check_report(report)
    if via == "thread":
        assert "PipeRunner.run()" in report["notes"][0]


def test_cli_runs_phases_in_child_processes_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "pipe.json"
    code = bench.main(["--n", str(N), "--rounds", "1", "--changes", "1", "--dir", str(tmp_path),
                       "--json", str(out)])
    assert code in (0, 1)  # 1: a target not met, which a tiny run may well be
    report = json.loads(out.read_text())
    _check_report(report)
    assert report["config"]["rounds"] == 1


def test_pump_and_baseline_write_the_same_entities(tmp_path: Path) -> None:
    """The pipe and the baseline loop produce the same output (so they measure the same work)."""
    from actors import Datasets, build_runner

    root = str(tmp_path / "data")
    bench.setup(root, 50, 5)
    datasets = Datasets(root)
    try:
        for workload in ("flat", "hop"):
            runner = build_runner(bench.pipe_config("p-" + workload, workload, f"{workload}-pipe"), datasets)
            assert runner.run(kind="full").changes == 50
            piped = {e["_id"]: e for e in datasets.get(f"{workload}-pipe").iter_entities()}
            compiled = bench.dtl.compile_transform(bench.transform(workload))
            source = [bench.storage.decode(e) for e in datasets.get(bench.SOURCE).iter_entities()]
            looped = {e["_id"]: bench.storage.encode(e) for e in compiled.run(source, lookup=datasets.lookup)}
            assert set(piped) == set(looped)
            for entity_id, entity in looped.items():
                body = {k: v for k, v in piped[entity_id].items() if not k.startswith("_") or k == "_id"}
                assert body == entity
            if workload == "hop":
                assert all(e["tier"] for e in looped.values())
    finally:
        datasets.close_all()
