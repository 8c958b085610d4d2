"""Continuation flags per source type (node-spec 4.3, 6.0): fixed and settable flags, their schema, the
strategies they select (chronological, max, none), and ``initial_since_value``."""

from __future__ import annotations

from typing import Any

import pytest

from actors import ConfigError, Datasets, build_runner
from actors.components import registered

FLAGS = ("supports_since", "is_since_comparable", "is_chronological")



def latest(datasets: Datasets, name: str) -> dict[str, dict[str, Any]]:
    return {e["_id"]: e for e in datasets.open(name).iter_entities(history=False)}


def embedded(pipe_id: str, entities: list[dict[str, Any]], **source: Any) -> dict[str, Any]:
    return {"_id": pipe_id, "type": "pipe", "source": {"type": "embedded", "entities": entities, **source}}


# -- flags: fixed, settable, documented ------------------------------------------------------------------------

FIXED_SOURCES = {
    "dataset": ({"dataset": "a"}, {"supports_since": True, "is_since_comparable": True, "is_chronological": True}),
    "union_datasets": ({"datasets": ["a"]}, {"supports_since": True, "is_since_comparable": True,
                                             "is_chronological": True}),
    "merge_datasets": ({"datasets": ["a"]}, {"supports_since": True, "is_since_comparable": True,
                                             "is_chronological": True}),
    "merge": ({"datasets": ["a x"]}, {"supports_since": True, "is_since_comparable": True, "is_chronological": True}),
    "empty": ({}, {"supports_since": False, "is_since_comparable": True, "is_chronological": True}),
}


@pytest.mark.parametrize("source_type", sorted(FIXED_SOURCES))
@pytest.mark.parametrize("flag", FLAGS)
def test_a_fixed_flag_may_be_repeated_but_not_changed(datasets: Datasets, source_type: str, flag: str) -> None:
    properties, fixed = FIXED_SOURCES[source_type]
    source = {"type": source_type, **properties}
    runner = build_runner({"_id": "x", "type": "pipe", "source": {**source, flag: fixed[flag]}}, datasets)
    assert getattr(runner.source, flag) is fixed[flag]
    with pytest.raises(ConfigError) as caught:
        build_runner({"_id": "x", "type": "pipe", "source": {**source, flag: not fixed[flag]}}, datasets)
    assert caught.value.where == f"pipe x: source.{flag}"
    assert str(caught.value) == (f"pipe x: source.{flag}: is fixed to {str(fixed[flag]).lower()} "
                                 f"for source type {source_type!r}")


def test_embedded_flags_are_settable_and_select_the_strategy(datasets: Datasets) -> None:
    def strategy(**flags: bool) -> str:
        runner = build_runner(embedded("e", [], **flags), datasets)
        return runner.source.continuation

    assert strategy() == "none"  # the defaults: no since, comparable, not chronological
    assert strategy(supports_since=True) == "max"
    assert strategy(supports_since=True, is_chronological=True) == "chronological"
    assert strategy(supports_since=True, is_since_comparable=False) == "none"
    assert strategy(is_chronological=True) == "none"  # without since there is no offset


def test_a_conditional_source_has_its_alternatives_flags(datasets: Datasets) -> None:
    alternatives = {"a": {"type": "embedded", "entities": [], "supports_since": True},
                    "b": {"type": "dataset", "dataset": "a", "is_chronological": False}}
    chosen = build_runner({"_id": "x", "type": "pipe", "source": {
        "type": "conditional", "condition": "a", "alternatives": alternatives}}, datasets)
    assert (chosen.source.supports_since, chosen.source.continuation) == (True, "max")
    with pytest.raises(ConfigError) as caught:  # the other alternative is not built
        build_runner({"_id": "x", "type": "pipe", "source": {
            "type": "conditional", "condition": "b", "alternatives": alternatives}}, datasets)
    assert caught.value.where == "pipe x: source.alternatives.b.is_chronological"
    with pytest.raises(ConfigError) as caught:
        build_runner({"_id": "x", "type": "pipe", "source": {
            "type": "conditional", "condition": "a", "alternatives": alternatives, "supports_since": True}}, datasets)
    assert caught.value.where == "pipe x: source.supports_since" and "alternatives" in caught.value.detail


def test_each_source_schema_documents_its_flags() -> None:
    schemas = {spec.type: spec.schema["properties"] for spec in registered("source")}
    for source_type, (_properties, fixed) in FIXED_SOURCES.items():
        for flag, value in fixed.items():
            assert schemas[source_type][flag] == {"type": "boolean", "default": value, "readOnly": True}
        assert "initial_since_value" in schemas[source_type]
    assert {flag: schemas["embedded"][flag] for flag in FLAGS} == {
        "supports_since": {"type": "boolean", "default": False},
        "is_since_comparable": {"type": "boolean", "default": True},
        "is_chronological": {"type": "boolean", "default": False},
    }
    assert not set(FLAGS) & set(schemas["conditional"])


def test_a_flag_must_be_a_boolean(datasets: Datasets) -> None:
    with pytest.raises(ConfigError) as caught:
        build_runner(embedded("e", [], supports_since="yes"), datasets)
    assert caught.value.where == "pipe e: source.supports_since"


# -- embedded with since ---------------------------------------------------------------------------------------

def test_embedded_with_supports_since_runs_incrementally_with_the_max_strategy(datasets: Datasets) -> None:
    first_list = [{"_id": "a", "_updated": 3, "v": 1}, {"_id": "b", "_updated": 1, "v": 1},
                  {"_id": "c", "_updated": 2, "v": 1}]
    runner = build_runner(embedded("e", first_list, supports_since=True), datasets)
    first = runner.run()
    assert (first.sync_type, first.processed, first.changes) == ("full", 3, 3)
    assert runner.get_offset() == 3  # the largest _updated, although "c" came last
    assert runner.run().processed == 0  # incremental: nothing after 3

    second_list = [
        {"_id": "a", "_updated": 3, "v": 2},  # changed, but not after the offset: not emitted
        {"_id": "b", "_updated": 4, "v": 2},
        {"_id": "d", "_updated": 5, "v": 1},
        {"_id": "n", "v": 1},  # no _updated: always emitted
        {"_id": "s", "_updated": "text", "v": 1},  # does not compare with an int: emitted
        # "c" is gone, but an incremental run does no deletion tracking
    ]
    runner = build_runner(embedded("e", second_list, supports_since=True), datasets)
    second = runner.run()
    assert (second.sync_type, second.processed, second.changes, second.deleted) == ("incremental", 4, 4, 0)
    assert runner.get_offset() == 5
    result = latest(datasets, "e")
    assert {i: e["v"] for i, e in result.items()} == {"a": 1, "b": 2, "c": 1, "d": 1, "n": 1, "s": 1}
    assert not result["c"]["_deleted"]

    full = runner.run(kind="full")  # a full run reads everything and tracks deletions
    assert (full.sync_type, full.processed, full.deleted) == ("full", 5, 1)
    assert latest(datasets, "e")["a"]["v"] == 2 and latest(datasets, "e")["c"]["_deleted"] is True


def test_the_max_strategy_commits_the_offset_only_at_the_end(datasets: Datasets) -> None:
    entities = [{"_id": f"e{i}", "_updated": i} for i in (5, 1, 4, 2, 3)]
    runner = build_runner({**embedded("e", entities, supports_since=True), "batch_size": 2}, datasets)
    offsets = []
    for work in (run := runner.begin()).batches():
        offsets.append(work.state["offset"])
        datasets.apply(run.write(run.transform(work)))
    assert offsets == [None, None, None]  # every batch commits the old offset
    assert run.final_state is not None and run.final_state["offset"] == 5


def test_embedded_chronological_moves_the_offset_with_every_batch(datasets: Datasets) -> None:
    entities = [{"_id": f"e{i}", "_updated": i} for i in range(1, 6)]
    runner = build_runner({**embedded("e", entities, supports_since=True, is_chronological=True),
                           "batch_size": 2}, datasets)
    calls = iter([False, False, True])
    stopped = runner.run(should_stop=lambda: next(calls, True))
    assert stopped.stopped and runner.get_offset() == 4  # two batches committed, with their offsets
    resumed = runner.run()
    assert (resumed.sync_type, resumed.processed, runner.get_offset()) == ("incremental", 1, 5)


def test_since_values_that_do_not_compare_keep_no_offset(datasets: Datasets) -> None:
    entities = [{"_id": "a", "_updated": 2}, {"_id": "b", "_updated": 1}]
    runner = build_runner(embedded("e", entities, supports_since=True, is_since_comparable=False), datasets)
    assert runner.run().sync_type == "full" and runner.get_offset() is None
    runner = build_runner(embedded("e", entities[:1], supports_since=True, is_since_comparable=False), datasets)
    again = runner.run()
    assert (again.sync_type, again.processed, again.deleted) == ("full", 1, 1)  # every run is full


def test_embedded_without_since_ignores_updated_and_initial_since_value(datasets: Datasets) -> None:
    entities = [{"_id": "a", "_updated": 1}, {"_id": "b", "_updated": 9}]
    runner = build_runner(embedded("e", entities, initial_since_value=5), datasets)
    for _ in range(2):
        result = runner.run()
        assert (result.sync_type, result.processed) == ("full", 2)
    assert runner.get_offset() is None


# -- initial_since_value -----------------------------------------------------------------------------------------

def test_initial_since_value_starts_a_source_that_supports_since(datasets: Datasets) -> None:
    entities = [{"_id": f"e{i}", "_updated": i} for i in range(1, 6)]
    runner = build_runner(embedded("e", entities, supports_since=True, initial_since_value=3), datasets)
    first = runner.run()
    assert (first.processed, sorted(latest(datasets, "e")), runner.get_offset()) == (2, ["e4", "e5"], 5)

    build_runner(embedded("people", [{"_id": f"p{i}"} for i in range(4)]), datasets).run()  # offsets 0-3
    copy = build_runner({"_id": "copy", "type": "pipe",
                         "source": {"type": "dataset", "dataset": "people", "initial_since_value": 1}}, datasets)
    result = copy.run()
    assert (result.processed, sorted(latest(datasets, "copy")), copy.get_offset()) == (2, ["p2", "p3"], 3)
    copy.set_offset("")  # a reset starts from initial_since_value again
    assert copy.run().processed == 2
