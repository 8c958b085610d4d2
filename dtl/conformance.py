"""Run DTL conformance case files: ``python -m dtl.conformance DIR [--json OUT]``.

Each ``*.json`` file in DIR is one case (kinds ``expr``, ``rules`` and ``steps``; see the cases' README).
Prints every failure with its expected and actual value, then ``N passed, M failed``; exits 1 on failure.
``--json OUT`` writes ``{"passed": N, "failed": M, "cases": [{"name", "passed", "detail"}, ...]}``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from storage import decode

from . import DTLError, compile_expression, compile_transform
from ._values import Datetime, encode_value
from .testing import InMemoryLookup

__all__ = ["main", "matches", "run_case"]

_NUMBERS = (int, float, Decimal)


def _decode(value: Any) -> Any:
    return decode(value, tilde_escape=False)


def _instant(value: _dt.date) -> Any:
    if isinstance(value, _dt.datetime):
        return Datetime.from_datetime(value).epoch_ns
    return ("date", value)


def matches(expected: Any, actual: Any, tolerance: float | None = None) -> bool:
    """Whether ``actual`` (typed) matches ``expected`` (typed) under the cases' comparison rules."""
    kind = type(expected)
    if kind is bool or expected is None:
        return type(actual) is kind and actual == expected
    if kind is int or kind is float:
        if type(actual) not in _NUMBERS:
            return False
        if kind is int:
            return bool(actual == expected)
        limit = max(tolerance or 1e-9, 1e-9 * abs(expected))
        return abs(float(actual) - expected) <= limit
    if kind is Decimal:
        return type(actual) is Decimal and actual == expected
    if isinstance(expected, _dt.date):
        return isinstance(actual, _dt.date) and _instant(actual) == _instant(expected)
    if kind is list:
        return type(actual) is list and len(actual) == len(expected) and all(
            matches(e, a, tolerance) for e, a in zip(expected, actual, strict=True))
    if kind is dict:
        return type(actual) is dict and actual.keys() == expected.keys() and all(
            matches(v, actual[k], tolerance) for k, v in expected.items())
    return type(actual) is kind and actual == expected


def _multiset_matches(expected: list[Any], actual: Any, tolerance: float | None) -> bool:
    if type(actual) is not list or len(actual) != len(expected):
        return False
    remaining = list(actual)
    for item in expected:
        for i, candidate in enumerate(remaining):
            if matches(item, candidate, tolerance):
                del remaining[i]
                break
        else:
            return False
    return True


def run_case(case: dict[str, Any]) -> Any:
    """Evaluate one case and return its (typed) result; raises on evaluation errors."""
    pipe = case.get("pipe")
    lookup = InMemoryLookup({k: _decode(v) for k, v in (case.get("datasets") or {}).items()})
    if "expr" in case:
        expression = compile_expression(case["expr"], pipe=pipe, lookup=lookup)
        return expression.evaluate(_decode(case.get("source", {})), target=_decode(case.get("target", {})),
                                   bound=_decode(case.get("bound", {})))
    if "rules" in case:
        config = {"type": "dtl", **(case.get("transform") or {}), "rules": case["rules"]}
        transform = compile_transform(config, pipe=pipe, lookup=lookup)
        return transform.run(_decode(case.get("input", [])))
    if "steps" in case:
        transform = compile_transform({"type": "dtl", "rules": {"default": case["steps"]}}, pipe=pipe,
                                      lookup=lookup)
        return transform.apply_rule("default", _decode(case.get("source", {})),
                                    target=_decode(case.get("target", {})))
    raise ValueError("the case has none of expr, rules and steps")


def check_case(case: dict[str, Any]) -> tuple[bool, str]:
    """``(passed, explanation)`` for one case."""
    if case.get("expected_error"):
        try:
            actual = run_case(case)
        except DTLError as error:
            return True, f"failed as expected: {error}"
        return False, f"expected an error, got {json.dumps(encode_value(actual), default=str)}"
    try:
        actual = run_case(case)
    except Exception as error:  # report any failure as the case's result
        return False, f"raised {type(error).__name__}: {error}"
    expected = _decode(case["expected"])
    tolerance = case.get("tolerance")
    if "rules" in case and type(expected) is list:
        ok = _multiset_matches(expected, actual, tolerance)
    else:
        ok = matches(expected, actual, tolerance)
    if ok:
        return True, ""
    return False, (f"expected {json.dumps(case['expected'], ensure_ascii=False)}\n"
                   f"    actual   {json.dumps(encode_value(actual), ensure_ascii=False, default=str)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dtl.conformance", description=__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--json", type=Path, help="write per-case results to this file")
    args = parser.parse_args(argv)
    results = []
    for path in sorted(args.directory.glob("*.json")):
        try:
            case = json.loads(path.read_text(encoding="utf-8"))
            passed, detail = check_case(case)
        except Exception as error:  # an unreadable case counts as failed
            passed, detail = False, f"cannot load: {type(error).__name__}: {error}"
        name = path.stem
        results.append({"name": name, "passed": passed, "detail": detail})
        if not passed:
            print(f"FAIL {name}\n    {detail}")
    failed = sum(1 for r in results if not r["passed"])
    if args.json:
        report = {"passed": len(results) - failed, "failed": failed, "cases": results}
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
