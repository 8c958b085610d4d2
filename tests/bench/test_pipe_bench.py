"""The pipe benchmark (scripts/bench/pipe.py) at a tiny size: every phase runs, the JSON names every figure.

No timing assertions: the figures are only checked to be there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sesamd.testing import load_bench_script

N = 300


bench = load_bench_script("pipe")


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
    for name in ("flat.pump", "flat.baseline", "hop.pump", "hop.baseline", "small.pump", "small.baseline", "deps"):
        if name != "deps":
            assert data["figures"][f"{name}.entities_per_s"] > 0
        total, anon, file = (data["figures"][f"{name}.{f}"] for f in ("peak_rss", "peak_rss_anon", "peak_rss_file"))
        assert 0 < anon < total and 0 < file < total  # sampled parts of the whole resident set
    assert data["config"]["profile"] == "node"
    assert data["config"]["dataset_options"] == bench.storage.LevelDBOptions.NODE.plyvel_kwargs()
    assert data["figures"]["deps.incremental.seconds"] > 0
    assert data["checks"]["deps"] and all(c["changes"] == 1 for c in data["checks"]["deps"])
    table = bench.format_report(report)
    for label in ("baseline", "pump", "batch_size 100", "change -> commit", "peak RSS", "(anon ", ", file ",
                  "node profile"):
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


def test_rss_sampler_sees_anonymous_memory_grow() -> None:
    with bench.RssSampler(interval=0.005) as sampler:
        before, _file = sampler.sample()
        block = bytearray(64 << 20)  # zero pages are not resident until written
        block[:: 4096] = b"x" * len(block[:: 4096])
        sampler.sample()
    assert sampler.peak_anon >= before + (60 << 20)
    assert sampler.peak_file > 0
    assert set(sampler.peaks()) == {"peak_rss_anon", "peak_rss_file"}
    del block


def test_phases_open_datasets_with_the_chosen_profile(tmp_path: Path) -> None:
    """Pump and baseline alike open the datasets with the profile (the setup, a bulk load, with the bulk one)."""
    root = str(tmp_path / "data")
    bench.setup(root, 20, 2)
    for profile, expected in (("node", bench.storage.LevelDBOptions.NODE),
                              ("bulk", bench.storage.LevelDBOptions.BULK),
                              ("8/4", bench.storage.LevelDBOptions.NODE.replace(write_buffer_size=8 << 20,
                                                                                lru_cache_size=4 << 20))):
        assert bench.dataset_options(profile) == expected
        datasets = bench._datasets(root, profile)
        try:
            assert datasets.open(bench.SOURCE, create=False).options == expected
        finally:
            datasets.close_all()
    with pytest.raises(ValueError):
        bench.dataset_options("huge")
