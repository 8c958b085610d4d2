"""The client benchmark (scripts/bench/client.py) at a tiny size against a real ``sesamd serve``: the generated
project is valid and runs to stable, ``sesam test`` and the bare-API baseline both pass and are timed, a wrong
expected file fails the baseline's check, and the table names both. No timing assertions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sesamd.testing import load_bench_script

PIPES = 15  # three of each kind


bench = load_bench_script("client")


def test_the_generated_project_has_every_kind_and_chains_its_aggregates(tmp_path: Path) -> None:
    endpoints = bench.generate_project(tmp_path, PIPES)
    files = sorted(p.name for p in (tmp_path / "pipes").iterdir())
    assert len(files) == PIPES and endpoints == ["out-0", "out-1", "out-2"]
    agg = json.loads((tmp_path / "pipes" / "agg-2.conf.json").read_text())
    assert "agg-1 p" in json.dumps(agg)  # each aggregate hops into the one before
    assert json.loads((tmp_path / "test-env.json").read_text()) == {}
    with pytest.raises(ValueError, match="multiple of 5"):
        bench.project_pipes(12)


def test_benchmark_times_both_and_names_them(tmp_path: Path) -> None:
    report = bench.measure(PIPES, rounds=1, scratch=str(tmp_path), log=lambda s: None)
    assert report["config"] == {"pipes": PIPES, "endpoints": 3, "rounds": 1}
    assert all(report["figures"][name] > 0 for name in bench.FIGURES)
    table = bench.table(report)
    assert "sesam test, generated project" in table and "bare API calls" in table and "met?" in table


def test_the_baseline_fails_on_a_wrong_expected_file(tmp_path: Path) -> None:
    project = tmp_path / "project"
    endpoints = bench.generate_project(project, PIPES)
    with bench.serve_process(tmp_path / "node") as daemon:
        bench.sesam(daemon, project, "upload")
        bench.sesam(daemon, project, "run")
        bench.sesam(daemon, project, "update")
        bench.api_baseline(daemon, project, endpoints)  # as updated: equal
        expected = project / "expected" / "out-1.json"
        entities = json.loads(expected.read_text())
        entities[0]["rank"] = not entities[0]["rank"]
        expected.write_text(json.dumps(entities))
        with pytest.raises(RuntimeError, match="out-1 differs"):
            bench.api_baseline(daemon, project, endpoints)
        with pytest.raises(RuntimeError, match="sesam verify exited 1"):
            bench.sesam(daemon, project, "verify")
