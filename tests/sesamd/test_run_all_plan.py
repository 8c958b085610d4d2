"""The sans-IO part of run-all-pipes: options, classification, order and pass bookkeeping."""

from __future__ import annotations

import pytest

from sesamd._run_all_plan import (
    ENDPOINT,
    INPUT,
    INTERNAL,
    OUTPUT,
    OptionError,
    Options,
    PipeNode,
    PipeOutcome,
    Progress,
    after_pass,
    classify,
    is_user_pipe,
    parse_options,
    plan,
)


def test_options_parse_the_clients_booleans_in_any_case_and_name_bad_ones() -> None:
    options = parse_options({"extra_zero_runs": "3", "max_runs": "7", "max_run_time": "12.5",
                             "delete_input_datasets": "False", "check_input_pipes": "True",
                             "reset_pipes_and_delete_sink_datasets": "false", "output_run_statistics": "TRUE",
                             "scheduler_mode": "poll", "request_mode": "async", "unrelated": "x"})
    assert options == Options(3, 7, 12.5, False, False, True, True, "poll", "async")
    assert parse_options({}) == Options()
    assert parse_options({"max_runs": ""}).max_runs == 100
    for name, value in (("max_runs", "0"), ("max_runs", "many"), ("extra_zero_runs", "-1"),
                        ("max_run_time", "nan"), ("check_input_pipes", "maybe"), ("request_mode", "later"),
                        ("scheduler_mode", "lazy")):
        with pytest.raises(OptionError) as caught:
            parse_options({name: value})
        assert caught.value.name == name and name in str(caught.value) and value in str(caught.value)


def test_pipes_are_classified_from_the_effective_config_in_the_clients_order() -> None:
    def pipe(source: dict[str, object], sink: dict[str, object]) -> dict[str, object]:
        return {"source": source, "sink": sink}

    assert classify(pipe({"type": "embedded"}, {"type": "sql"})) == INPUT
    assert classify(pipe({"type": "dataset", "dataset": "a"}, {"type": "csv_endpoint"})) == ENDPOINT
    assert classify(pipe({"type": "dataset", "dataset": "a"}, {"type": "dataset", "dataset": "b"})) == INTERNAL
    assert classify(pipe({"type": "dataset", "dataset": "a"}, {"type": "rest"})) == OUTPUT
    assert classify(pipe({"type": "sql"}, {"type": "dataset", "dataset": "b"})) == INTERNAL
    assert is_user_pipe("a", {"metadata": {"origin": "user"}}) and is_user_pipe("a", {})
    assert not is_user_pipe("a", {"metadata": {"origin": "system"}})
    assert not is_user_pipe("a:singlenode", {})


def node(pipe_id: str, reads: tuple[str, ...] = (), writes: str | None = None, kind: str = INTERNAL,
         pushed: bool = False) -> PipeNode:
    return PipeNode(pipe_id, kind, frozenset(reads), pipe_id if writes is None else writes, pushed)


def test_the_order_is_topological_by_dataset_edges_with_levels() -> None:
    pipes = [node("c", ("b",)), node("b", ("a", "x")), node("a", kind=INPUT), node("x", kind=INPUT),
             node("d", ("a",)), node("out", ("c",), kind=OUTPUT), node("push", pushed=True, kind=INTERNAL)]
    order = plan(pipes)
    assert order.levels == ((("a",), ("x",)), (("b",), ("d",)), (("c",),))
    assert order.order == ("a", "x", "b", "d", "c")
    assert order.inputs == {"a", "x"}
    assert order.for_pass(2) == ((("b",), ("d",)), (("c",),))


def test_cycles_run_in_sorted_id_order_and_shared_sinks_never_side_by_side() -> None:
    pipes = [node("z", ("y",)), node("y", ("z", "in")), node("in", kind=INPUT),
             node("m1", ("in",), writes="shared"), node("m2", ("in",), writes="shared"), node("q", ("shared", "z"))]
    order = plan(pipes)
    assert order.levels == ((("in",),), (("m1", "m2"), ("y", "z")), (("q",),))
    selfloop = plan([node("s", ("s",))])
    assert selfloop.order == ("s",)


def test_a_large_plan_is_deterministic() -> None:
    pipes = [node(f"p{i:03}", (f"p{i - 1:03}",) if i % 10 else ()) for i in range(300)]
    first = plan(pipes)
    assert first == plan(list(reversed(pipes)))
    assert len(first.levels) == 10 and len(first.order) == 300


OPTIONS = Options(extra_zero_runs=2, max_runs=10, max_run_time=100)


def test_success_after_a_zero_pass_and_the_extra_zero_runs() -> None:
    progress = Progress()
    verdicts = []
    for changes in (5, 1, 0, 0, 0):
        result = after_pass(progress, [PipeOutcome("a", True, changes)], OPTIONS, inputs=frozenset(), elapsed=1)
        progress = result.progress
        verdicts.append(result.verdict.status)
        assert ("INFO", f"A total of {changes} entities changed in pass #{progress.passes}") in result.log
    assert verdicts == [None, None, None, None, "success"]
    assert result.log[-1] == ("INFO", "Finished after 5 passes")
    assert progress.statistics() == {"passes": 5, "changes_per_pass": [5, 1, 0, 0, 0], "pipes": {"a": {
        "runs": 5, "skipped": 0, "changes": 6, "processed": 0, "seconds": 0.0, "failures": 0}}}


def test_a_change_restarts_the_zero_count() -> None:
    progress = Progress()
    for changes in (0, 0, 3, 0, 0):
        result = after_pass(progress, [PipeOutcome("a", True, changes)], OPTIONS, inputs=frozenset(), elapsed=1)
        progress = result.progress
        assert result.verdict.status is None
    assert progress.zero_passes == 2


def test_limits_fail_the_run() -> None:
    busy = Progress(passes=9)
    result = after_pass(busy, [PipeOutcome("a", True, 1)], OPTIONS, inputs=frozenset(), elapsed=1)
    assert result.verdict.status == "failed" and "max_runs=10" in result.verdict.reason
    slow = after_pass(Progress(), [PipeOutcome("a", True, 1)], OPTIONS, inputs=frozenset(), elapsed=100)
    assert slow.verdict.status == "failed" and "max_run_time=100" in slow.verdict.reason


def test_input_pipe_failures_count_only_with_check_input_pipes() -> None:
    failing = [PipeOutcome("in", False, error="no system"), PipeOutcome("a", True, 2)]
    lenient = after_pass(Progress(), failing, OPTIONS, inputs=frozenset({"in"}), elapsed=1)
    assert lenient.verdict.status is None
    assert lenient.log[0][0] == "WARNING" and "no system" in lenient.log[0][1]
    strict = Options(check_input_pipes=True)
    failed = after_pass(Progress(), failing, strict, inputs=frozenset({"in"}), elapsed=1)
    assert failed.verdict.status == "failed" and "'in'" in failed.verdict.reason
    internal = after_pass(Progress(), [PipeOutcome("a", False, error="boom")], OPTIONS, inputs=frozenset(),
                          elapsed=1)
    assert internal.verdict.status == "failed" and ("ERROR", "Failed: pipe 'a' failed in pass #1") in internal.log
