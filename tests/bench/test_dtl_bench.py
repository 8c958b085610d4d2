"""The DTL benchmark (scripts/bench/dtl.py) at a tiny size: outputs agree, the JSON names every figure.

No timing assertions: the figures are only checked to be there.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from sesamd.testing import load_bench_script

N = 500


bench = load_bench_script("dtl")


def test_tutorial_dtl_matches_hand_written():
    built = bench.build(N)
    workload = built["workloads"]["tutorial"]
    emitted = workload.check(N)
    assert 0 < emitted < N  # the filter keeps some customers and drops some
    dtl_out = workload.dtl_batch(workload.inputs)
    hand_out = workload.hand_batch(workload.inputs)
    assert bench.difference(dtl_out, hand_out) is None
    first = dtl_out[0]
    assert set(first) == {"_id", "type", "name", "orders", "order_count", "total"}
    assert first["order_count"] == len(first["orders"]) >= 1
    assert type(first["total"]) is Decimal
    assert all(type(o["total"]) is Decimal for o in first["orders"])


def test_flat_dtl_matches_hand_written():
    built = bench.build(N)
    workload = built["workloads"]["flat"]
    emitted = workload.check(N)
    assert 0 < emitted < N
    dtl_out = workload.dtl_batch(workload.inputs)
    assert bench.difference(dtl_out, workload.hand_batch(workload.inputs)) is None
    if built["parse_dates"]:
        assert all("signed_up" in e for e in dtl_out)


def test_difference_is_strict():
    assert bench.difference({"a": Decimal("1.0")}, {"a": Decimal("1.00")}) is not None
    assert bench.difference([1], [1.0]) is not None
    assert bench.difference({"a": [1, {"b": "x"}]}, {"a": [1, {"b": "x"}]}) is None
    with pytest.raises(AssertionError):
        bench.check_same("x", [{"a": 1}], [{"a": 2}])


def test_hand_index_keeps_id_order():
    customers, orders = bench.customers_and_orders(50)
    index = bench.hand_orders_index(reversed(orders))
    for bucket in index.values():
        assert [o["_id"] for o in bucket] == sorted(o["_id"] for o in bucket)
    assert sum(len(b) for b in index.values()) == len(orders)
    assert set(index) <= {c["_id"] for c in customers}


def test_json_has_every_named_figure(tmp_path):
    out = tmp_path / "bench.json"
    status = bench.main(["--n", str(N), "--rounds", "1", "--sample", str(N), "--json", str(out)])
    assert status in (0, 1)  # 1: a target was missed, which is not for this test to judge
    result = json.loads(out.read_text())
    jq_ran = not any(note in result["notes"] for note in ("jq not installed", "jq skipped (--no-jq)"))
    for name in bench.FIGURES:
        assert name in result["figures"], name
        if ".jq." in name and not jq_ran:
            assert result["figures"][name] is None
        else:
            assert result["figures"][name] is not None and result["figures"][name] > 0, name
    for name in bench.RATIOS:
        assert name in result["ratios"], name
        if "jq" not in name or jq_ran:
            assert result["ratios"][name] > 0, name
    for name in bench.TARGETS:
        target = result["targets"][name]
        assert target["target"] == bench.TARGET
        assert target["met"] == (target["ratio"] >= bench.TARGET)
    assert result["n"] == N
    assert result["checks"]["tutorial.emitted"] > 0 and result["checks"]["flat.emitted"] > 0


def test_without_jq_prints_a_row(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)
    out = tmp_path / "bench.json"
    bench.main(["--n", "200", "--rounds", "1", "--json", str(out)])
    result = json.loads(out.read_text())
    assert "jq not installed" in result["notes"]
    assert result["figures"]["tutorial.jq.entities_per_s"] is None
    assert result["ratios"]["flat.jq_vs_hand"] is None
    assert "jq not installed" in capsys.readouterr().out


def test_tutorial_rules_are_checked_against_the_tutorial_file(tmp_path):
    pipe = {"_id": bench.TUTORIAL_PIPE, "type": "pipe", "transform": {"type": "dtl", "rules": bench.TUTORIAL_RULES}}
    same = tmp_path / "same.json"
    same.write_text(json.dumps([pipe]))
    config, notes = bench.tutorial_transform_config(same)
    assert config["rules"]["default"][0] == ["copy", "_id"]
    assert any("checked against" in note for note in notes)
    changed = tmp_path / "changed.json"
    pipe["transform"]["rules"] = {"default": [["copy", "*"]]}
    changed.write_text(json.dumps([pipe]))
    with pytest.raises(SystemExit, match="differ"):
        bench.tutorial_transform_config(changed)
