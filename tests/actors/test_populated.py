"""Populated datasets (node-spec 2.5): ``require_populated_input`` skips runs over unpopulated input, and the
dataset sink's ``set_initial_offset`` marks the sink populated (at load, at the start or end of a run)."""

from __future__ import annotations

from typing import Any

import pytest

from actors import Datasets, PipeRunError, Supervisor, build_runner, run_pipeline
from actors.testing import RecordingWriters

GLOBAL_REQUIRE = {"global_defaults": {"require_populated_input": True}}



def seed(datasets: Datasets, name: str, entities: list[dict[str, Any]], populated: bool | None = None) -> None:
    with datasets.writing(name) as dataset:
        dataset.write(entities, populated=populated)


def copy_of(source: dict[str, Any], pipe_id: str = "out", **extra: Any) -> dict[str, Any]:
    return {"_id": pipe_id, "type": "pipe", "source": source, **extra}


def ids(datasets: Datasets, name: str) -> list[str]:
    if not datasets.exists(name):
        return []
    return sorted(e["_id"] for e in datasets.open(name).iter_entities(history=False))


# -- require_populated_input -----------------------------------------------------------------------------------

def test_a_run_over_unpopulated_input_is_skipped_and_changes_nothing(datasets: Datasets) -> None:
    seed(datasets, "in", [{"_id": "a"}, {"_id": "b"}])
    runner = build_runner(copy_of({"type": "dataset", "dataset": "in", "require_populated_input": True}), datasets)
    skipped = runner.run()
    assert skipped.skipped is not None and "'in'" in skipped.skipped and "not populated" in skipped.skipped
    assert (skipped.processed, skipped.batches, skipped.changes) == (0, 0, 0)
    assert ids(datasets, "out") == [] and runner.get_offset() is None

    datasets.open("in").set_populated(True)
    ran = runner.run()
    assert (ran.skipped, ran.sync_type, ran.processed) == (None, "full", 2)
    assert ids(datasets, "out") == ["a", "b"] and runner.get_offset() == 1

    datasets.open("in").set_populated(False)  # e.g. the producer's sink was reset
    seed(datasets, "in", [{"_id": "c"}])
    again = runner.run()
    assert again.skipped is not None and again.offset == 1 and again.processed == 0
    assert ids(datasets, "out") == ["a", "b"] and runner.get_offset() == 1


def test_the_global_default_applies_to_dataset_reading_sources_only(datasets: Datasets) -> None:
    seed(datasets, "in", [{"_id": "a"}])
    reading = build_runner(copy_of({"type": "dataset", "dataset": "in"}), datasets, GLOBAL_REQUIRE)
    assert reading.run().skipped is not None
    explicit = build_runner(copy_of({"type": "dataset", "dataset": "in", "require_populated_input": False}, "out2"),
                            datasets, GLOBAL_REQUIRE)
    assert explicit.run().processed == 1  # the source's own setting wins
    plain = build_runner(copy_of({"type": "dataset", "dataset": "in"}, "out3"), datasets)
    assert plain.run().processed == 1  # the default default is false
    embedded = build_runner(copy_of({"type": "embedded", "entities": [{"_id": "x"}]}, "out4"), datasets,
                            GLOBAL_REQUIRE)
    assert embedded.run().processed == 1  # not a dataset-reading source


@pytest.mark.parametrize("source", [
    {"type": "union_datasets", "datasets": ["a", "b"]},
    {"type": "merge_datasets", "datasets": ["a", "b"]},
    {"type": "merge", "datasets": ["a x", "b y"], "equality": [["eq", "x._id", "y._id"]]},
])
def test_multi_dataset_sources_need_all_their_datasets_populated(datasets: Datasets, source: dict[str, Any]) -> None:
    seed(datasets, "a", [{"_id": "1"}], populated=True)
    seed(datasets, "b", [{"_id": "2"}])
    runner = build_runner(copy_of({**source, "require_populated_input": True}), datasets)
    skipped = runner.run()
    assert skipped.skipped is not None and "'b'" in skipped.skipped and "'a'" not in skipped.skipped
    assert ids(datasets, "out") == []
    datasets.open("b").set_populated(True)
    ran = runner.run()
    assert ran.skipped is None and ran.processed >= 1 and ids(datasets, "out") != []


def test_the_message_names_every_unpopulated_dataset(datasets: Datasets) -> None:
    seed(datasets, "a", [{"_id": "1"}])
    runner = build_runner(copy_of({"type": "union_datasets", "datasets": ["a", "b"],
                                   "ignore_non_existent_datasets": False}), datasets, GLOBAL_REQUIRE)
    assert runner.run().skipped == ("the run was skipped: input datasets 'a', 'b' are not populated "
                                    "(require_populated_input)")


def test_a_conditional_source_requires_what_its_alternative_requires(datasets: Datasets) -> None:
    seed(datasets, "in", [{"_id": "a"}])
    source = {"type": "conditional", "condition": "on", "alternatives": {
        "on": {"type": "dataset", "dataset": "in", "require_populated_input": True}}}
    assert build_runner(copy_of(source), datasets).run().skipped is not None


async def test_a_skipped_run_through_the_pipeline_writes_nothing(datasets: Datasets) -> None:
    seed(datasets, "in", [{"_id": "a"}])
    runner = build_runner(copy_of({"type": "dataset", "dataset": "in"},
                                  sink={"type": "dataset", "set_initial_offset": "initially"}), datasets,
                          GLOBAL_REQUIRE)
    writers = RecordingWriters(datasets=datasets)
    result = await run_pipeline(runner, writers=writers)
    assert result.skipped is not None and writers.applied == []  # not even the sink's "initially"
    datasets.open("in").set_populated(True)
    result = await run_pipeline(runner, writers=writers)
    assert result.skipped is None and writers.applied.count("out") >= 3  # start, batch, end


# -- set_initial_offset ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("policy", "unpopulated_source", "populated_source"), [
    ("if-source-populated", False, True),
    ("always", True, True),
    ("never", False, False),
    ("initially", True, True),
    ("onload", False, False),  # a run never marks it: loading the pipe does (below)
])
def test_set_initial_offset_after_a_run(datasets: Datasets, policy: str, unpopulated_source: bool,
                                        populated_source: bool) -> None:
    seed(datasets, "in", [{"_id": "a"}])
    runner = build_runner(copy_of({"type": "dataset", "dataset": "in"},
                                  sink={"type": "dataset", "set_initial_offset": policy}), datasets)
    runner.run()
    assert datasets.open("out").populated is unpopulated_source
    datasets.open("out").set_populated(False)
    datasets.open("in").set_populated(True)
    runner.run(kind="full")
    assert datasets.open("out").populated is populated_source


def test_initially_is_part_of_the_start_write_which_the_run_never_applies(datasets: Datasets) -> None:
    seed(datasets, "in", [{"_id": "a"}, {"_id": "b"}])
    failing = {"type": "dtl", "rules": {"default": [["copy", "*"], ["if", ["eq", "_S._id", "b"], ["fail!", "no"]]]}}
    runner = build_runner(copy_of({"type": "dataset", "dataset": "in"}, transform=failing, batch_size=1,
                                  sink={"type": "dataset", "set_initial_offset": "initially"}), datasets)
    run = runner.begin()
    start = run.start()
    assert start is not None and start.dataset == "out"
    assert not datasets.exists("out")  # sans-IO: nothing happened yet
    full_run = datasets.apply(start)
    assert full_run is not None  # the full run's start still comes back (deletion tracking)
    assert datasets.open("out").populated

    datasets.open("out").set_populated(False)
    with pytest.raises(PipeRunError, match="no"):
        runner.run()  # marked at the start: a run that fails later leaves it marked
    assert datasets.open("out").populated

    incremental = runner.begin()
    assert not incremental.full and incremental.start() is not None  # every run, not only full ones


def test_onload_is_a_write_the_runner_returns(datasets: Datasets) -> None:
    onload = build_runner(copy_of({"type": "embedded", "entities": []},
                                  sink={"type": "dataset", "set_initial_offset": "onload"}), datasets)
    [write] = onload.load_writes()
    assert write.dataset == "out" and not datasets.exists("out")
    assert onload.sink_populated() is False
    datasets.apply(write)
    assert datasets.open("out").populated and onload.sink_populated() is True
    for policy in ("if-source-populated", "always", "never", "initially"):
        other = build_runner(copy_of({"type": "embedded", "entities": []}, "x",
                                     sink={"type": "dataset", "set_initial_offset": policy}), datasets)
        assert other.load_writes() == []
    assert build_runner(copy_of({"type": "embedded", "entities": []}, "n", sink={"type": "null"}),
                        datasets).sink_populated() is True


def test_a_conditional_sink_passes_its_alternatives_policy_on(datasets: Datasets) -> None:
    runner = build_runner(copy_of({"type": "embedded", "entities": []}, sink={
        "type": "conditional", "condition": "x", "alternatives": {
            "x": {"type": "dataset", "dataset": "target", "set_initial_offset": "onload"}}}), datasets)
    [write] = runner.load_writes()
    assert write.dataset == "target"


async def test_supervised_writers_apply_the_start_write(datasets: Datasets) -> None:
    from actors import DatasetWriters

    seed(datasets, "in", [{"_id": "a"}])
    runner = build_runner(copy_of({"type": "dataset", "dataset": "in"},
                                  sink={"type": "dataset", "set_initial_offset": "initially"}), datasets)
    async with Supervisor() as supervisor:
        writers = DatasetWriters(datasets)
        writers.attach(supervisor)
        result = await run_pipeline(runner, writers=writers)
    assert result.skipped is None and datasets.open("out").populated
