"""The conformance runner (on case files written by the test itself)."""

import json
import subprocess
import sys
from pathlib import Path

from dtl.conformance import main, matches
from dtl.testing import typed

CASES = {
    "expr-ok": {"expr": ["upper", "_S.n"], "source": {"n": "a"}, "expected": "A"},
    "expr-wrong": {"expr": ["lower", "A"], "expected": "A"},
    "rules-unordered": {"rules": {"default": [["copy", "_id"], ["create", "_S.c"]]},
                        "input": [{"_id": "p", "c": [{"_id": "c1"}]}], "expected": [{"_id": "c1"}, {"_id": "p"}]},
    "steps-ok": {"steps": [["add", "x", 1]], "source": {}, "target": {"y": 2}, "expected": {"y": 2, "x": 1}},
    "error-ok": {"rules": {"default": [["add", "_id", 5]]}, "input": [{"_id": "a"}], "expected_error": True},
    "error-missing": {"expr": ["list"], "expected_error": True},
    "hops-ok": {"expr": ["path", "v", ["lookup-entity", "d", "a"]], "datasets": {"d": [{"_id": "a", "v": "~f1.0"}]},
                "expected": "~f1.00"},
}


def write_cases(directory: Path) -> None:
    for name, case in CASES.items():
        (directory / f"{name}.json").write_text(json.dumps({"name": name, **case}))
    (directory / "broken.json").write_text("{not json")


def test_runner_reports_failures_and_counts(tmp_path, capsys):
    write_cases(tmp_path)
    report = tmp_path / "out" / "report.json"
    report.parent.mkdir()
    assert main([str(tmp_path), "--json", str(report)]) == 1
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == "5 passed, 3 failed"
    assert "FAIL expr-wrong" in out and "FAIL error-missing" in out and "FAIL broken" in out
    assert 'expected "A"' in out and 'actual   "a"' in out
    data = json.loads(report.read_text())
    assert (data["passed"], data["failed"]) == (5, 3)
    results = {r["name"]: r["passed"] for r in data["cases"]}
    assert results["expr-ok"] and not results["broken"]


def test_runner_exit_code_zero_when_all_pass(tmp_path):
    (tmp_path / "ok.json").write_text(json.dumps(CASES["expr-ok"]))
    done = subprocess.run([sys.executable, "-m", "dtl.conformance", str(tmp_path)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0
    assert done.stdout.strip() == "1 passed, 0 failed"


def test_comparison_rules():
    assert matches(1, 1.0) and matches(1, typed("~f1")) and not matches(1, True) and not matches(True, 1)
    assert matches(0.1, 0.1 + 1e-12) and not matches(0.1, 0.11) and matches(1.0, 1.05, tolerance=0.1)
    assert matches(typed("~f2.00"), typed("~f2")) and not matches(typed("~f2"), 2)
    assert matches(typed("~t2015-01-01T00:00:00Z"), typed("~t2015-01-01T00:00:00.000Z"))
    assert matches({"a": [1, None]}, {"a": [1, None]}) and not matches({"a": None}, {})
    assert not matches(None, []) and not matches("a", typed("~ra"))
