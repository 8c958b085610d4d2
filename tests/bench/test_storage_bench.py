"""The storage benchmark (scripts/bench/storage.py) still runs and reports every named figure.

Tiny sizes and no timing assertions: this only keeps the script from rotting.
"""

from __future__ import annotations

import json

import pytest

from sesamd.testing import load_bench_script


@pytest.fixture(scope="module")
def bench():
    return load_bench_script("storage")


def _check_report(bench, report, n):
    assert report["config"]["n"] == n
    for name in (*bench.FIGURES, *bench.MEMORY_FIGURES):
        assert name in report["figures"], name
    for name in bench.RATIOS:
        assert name in report["ratios"], name
        assert report["ratios"][name] > 0
    for name in bench.TARGETS:
        assert set(report["targets"][name]) >= {"value", "target", "met", "rule"}, name
    for phase in bench.PHASES:
        assert report["figures"][f"{phase}.entities_per_s"]["median"] > 0
    assert report["figures"]["store_fresh_ingest.peak_rss"] > 0


def test_main_writes_every_figure(bench, tmp_path, capsys):
    """The whole script, phases in child processes, --json output."""
    out = tmp_path / "bench.json"
    assert bench.main(["--n", "2000", "--rounds", "1", "--json", str(out), "--dir", str(tmp_path)]) == 0
    report = json.loads(out.read_text())
    _check_report(bench, report, 2000)
    printed = capsys.readouterr().out
    assert "store fresh ingest" in printed and "met?" in printed
    assert "import (sesamd dataset import, process)" in printed and "sqlite upsert script" in printed
    assert report["figures"]["import_cli.peak_rss"] > 0 and report["figures"]["sqlite_upsert.peak_rss"] > 0
    assert {"import_vs_in_process", "import_vs_sqlite"} <= set(report["targets"])
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]  # the temp data is gone


def test_phases_in_process(bench, tmp_path):
    """The phase functions themselves, in this process, on a short last batch."""
    report = bench.run_benchmark(2500, rounds=2, isolate=False, export_to="devnull", scratch=str(tmp_path),
                                 progress=False)
    _check_report(bench, report, 2500)
    assert len(report["ratios_per_round"]["store_fresh_vs_raw_fresh"]) == 2
    assert bench.format_report(report)


def test_export_is_a_json_array(bench, tmp_path):
    from storage import DataDir, parse_json

    bodies = tmp_path / "bodies.ndjson"
    bench._common.write_bodies(bodies, 1500)
    work = tmp_path / "work"
    work.mkdir()
    result = bench.run_phase("store_fresh_ingest", work, bodies)
    assert result["written"] == 1500
    result = bench.run_phase("store_export", work, bodies)
    exported = json.loads((work / "store_export.json").read_bytes())
    assert result["n"] == len(exported) == 1500
    with DataDir(work / "store").open_dataset(bench.DATASET) as dataset:
        assert exported[0] == dataset.get(exported[0]["_id"])
    first = parse_json(next(iter(bench._common.read_bodies(bodies))))[0]
    assert first["balance"].startswith("~f") and first["created"].startswith("~t")
