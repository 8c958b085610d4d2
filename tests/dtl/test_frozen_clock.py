"""The clock hook of DTL's ``now``: a transform or expression compiled with ``clock`` gives its time, without
one the wall clock."""

from __future__ import annotations

import time

from dtl import compile_expression, compile_transform
from storage import Datetime, parse_datetime

FROZEN = parse_datetime("2020-01-01T00:00:00Z")


def test_now_gives_the_clock_of_the_transform_for_every_entity_and_created_one() -> None:
    rules = {"default": [["copy", "*"], ["add", "at", ["now"]], ["add", "later", ["datetime-plus", "day", 1, ["now"]]],
                         ["create", ["dict", "_id", "child", "at", ["now"]]]]}
    transform = compile_transform({"type": "dtl", "rules": rules}, clock=lambda: FROZEN.epoch_ns)
    out = {e["_id"]: e for e in transform.run([{"_id": "a"}, {"_id": "b"}])}
    assert out["a"]["at"] == out["b"]["at"] == out["child"]["at"] == FROZEN
    assert out["a"]["later"] == parse_datetime("2020-01-02T00:00:00Z")


def test_now_follows_a_moving_clock_and_is_never_folded_at_compile_time() -> None:
    ticks = iter(range(1, 4))
    expression = compile_expression(["now"], clock=lambda: next(ticks) * 1_000_000_000)
    assert [expression.evaluate().epoch_ns for _ in range(3)] == [1_000_000_000, 2_000_000_000, 3_000_000_000]
    assert not expression.is_constant


def test_without_a_clock_now_is_the_wall_clock() -> None:
    before = time.time_ns()
    value = compile_expression(["now"]).evaluate()
    assert isinstance(value, Datetime) and before <= value.epoch_ns <= time.time_ns()
    rules = {"default": [["add", "at", ["now"]]]}
    out = compile_transform({"type": "dtl", "rules": rules}).run([{"_id": "a"}])
    assert before <= out[0]["at"].epoch_ns <= time.time_ns()
