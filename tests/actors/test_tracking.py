"""Dependency tracking's limits and operations (node-spec 11, 5.4): thresholds from the node metadata and the
pipe, warnings in the run's result, failures that keep the tracking offsets, and moving the offsets."""

from __future__ import annotations

from typing import Any

import pytest

from actors import ConfigError, Datasets, PipeRunError, build_runner
from actors._tracking import TrackingLimits

PEOPLE = [{"_id": f"p{i}", "group": f"g{i % 2}"} for i in range(6)]  # three people per group


def embedded(pipe_id: str, entities: list[dict[str, Any]]) -> dict[str, Any]:
    return {"_id": pipe_id, "type": "pipe", "source": {"type": "embedded", "entities": entities}}


def labelled(**extra: Any) -> dict[str, Any]:
    return {"_id": "labelled", "type": "pipe", "source": {"type": "dataset", "dataset": "people"},
            "transform": {"type": "dtl", "rules": {"default": [
                ["copy", "*"],
                ["add", "label", ["first", ["hops", {"datasets": ["groups g"], "where": [["eq", "_S.group", "g._id"]],
                                                     "return": "g.label"}]]]]}}, **extra}


def groups(datasets: Datasets, **labels: str) -> None:
    build_runner(embedded("groups", [{"_id": k, "label": v} for k, v in labels.items()]), datasets).run()


def label_of(datasets: Datasets, person: str) -> Any:
    entity = datasets.open("labelled").get(person)
    return None if entity is None else entity.get("label")


@pytest.fixture
def loaded(datasets: Datasets) -> Datasets:
    build_runner(embedded("people", PEOPLE), datasets).run()
    groups(datasets, g0="Zero", g1="One")
    return datasets


def test_limits_come_from_the_metadata_with_the_pipe_over_them() -> None:
    assert TrackingLimits.of("p", {}, {}) == TrackingLimits()
    assert TrackingLimits().dependency_error_threshold == 50_000
    assert TrackingLimits().dependency_warning_threshold_total_bytes == 32 * 1024 * 1024
    metadata = {"dependency_tracking": {"dependency_warning_threshold": 5, "dependency_error_threshold": 9}}
    pipe = {"dependency_tracking": {"dependency_error_threshold": 7}}
    limits = TrackingLimits.of("p", pipe, metadata)
    assert (limits.dependency_warning_threshold, limits.dependency_error_threshold) == (5, 7)


@pytest.mark.parametrize(("pipe", "metadata", "where"), [
    ({"dependency_tracking": {"dependency_error_threshold": 0}}, {},
     "pipe p: dependency_tracking.dependency_error_threshold"),
    ({}, {"dependency_tracking": {"dependency_warning_threshold": "many"}},
     "node metadata: dependency_tracking.dependency_warning_threshold"),
    ({"dependency_tracking": []}, {}, "pipe p: dependency_tracking"),
])
def test_bad_limits_are_config_errors_that_say_where(pipe: dict, metadata: dict, where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        TrackingLimits.of("p", pipe, metadata)
    assert caught.value.where == where


def test_a_bad_limit_in_a_pipe_is_a_config_error_of_the_pipe(loaded: Datasets) -> None:
    with pytest.raises(ConfigError, match="integer >= 1"):
        build_runner(labelled(dependency_tracking={"dependency_error_threshold": -1}), loaded)


def test_past_the_warning_threshold_the_run_completes_and_says_so(loaded: Datasets) -> None:
    runner = build_runner(labelled(), loaded, metadata={"dependency_tracking": {"dependency_warning_threshold": 2}})
    runner.run()
    groups(loaded, g0="Nil", g1="One")
    result = runner.run()
    assert (result.dependencies, result.changes) == (3, 3)
    assert result.warnings == ["dependency tracking: the source entities affected by changes in 'groups' passed "
                               "dependency_warning_threshold (2)"]
    assert label_of(loaded, "p0") == "Nil"


def test_past_the_error_threshold_the_run_fails_and_keeps_the_tracking_offsets(loaded: Datasets) -> None:
    runner = build_runner(labelled(dependency_tracking={"dependency_error_threshold": 2}), loaded)
    runner.run()
    before = runner.tracking_offsets()
    groups(loaded, g0="Nil", g1="One")
    with pytest.raises(PipeRunError, match=r"passed dependency_error_threshold \(2\).*rescan the pipe"):
        runner.run()
    assert runner.tracking_offsets() == before and label_of(loaded, "p0") == "Zero"
    relaxed = build_runner(labelled(dependency_tracking={"dependency_error_threshold": 3}), loaded)
    assert relaxed.run().changes == 3 and label_of(loaded, "p0") == "Nil"  # the change was not lost


def test_the_byte_thresholds_count_the_stored_size_of_the_affected_entities(loaded: Datasets) -> None:
    size = len(loaded.open("people").get_stored("p0") or b"")
    limits = {"dependency_warning_threshold_total_bytes": size, "dependency_error_threshold_total_bytes": 2 * size}
    runner = build_runner(labelled(dependency_tracking=limits), loaded)
    runner.run()
    groups(loaded, g0="Nil", g1="One")  # three people of about the same size: past the error threshold
    with pytest.raises(PipeRunError, match="stored size of the affected source entities passed "
                                           r"dependency_error_threshold_total_bytes"):
        runner.run()
    assert label_of(loaded, "p0") == "Zero"


def test_reset_tracking_skips_the_changes_so_far_and_set_tracking_to_start_replays_them(loaded: Datasets) -> None:
    runner = build_runner(labelled(), loaded)
    runner.run()
    groups(loaded, g0="Nil", g1="One")
    loaded.apply(runner.tracking_write("end"))
    assert runner.tracking_offsets() == {"groups": loaded.open("groups").next_offset - 1}
    assert runner.run().dependencies == 0 and label_of(loaded, "p0") == "Zero"
    loaded.apply(runner.tracking_write("start"))
    assert runner.tracking_offsets() == {"groups": -1}
    result = runner.run()
    assert result.dependencies == 6 and result.changes == 3 and label_of(loaded, "p0") == "Nil"


def test_a_pipe_without_hops_has_no_tracking_to_move(loaded: Datasets) -> None:
    runner = build_runner({"_id": "copy", "type": "pipe", "source": {"type": "dataset", "dataset": "people"}}, loaded)
    with pytest.raises(PipeRunError, match="tracks no dependencies"):
        runner.tracking_write("end")
