"""The ``conditional`` source, transform and sink: the chosen alternative is built and does everything."""

from __future__ import annotations

import pytest

from actors import ConfigError, Datasets, build_runner
from actors.components.sink_null import NullSink
from actors.components.source_dataset import DatasetSource


def latest(datasets: Datasets, name: str) -> dict[str, dict]:
    return {e["_id"]: e for e in datasets.open(name).iter_entities(history=False)}


def seed(datasets: Datasets, name: str, entities: list[dict]) -> None:
    with datasets.writing(name) as dataset:
        dataset.write(entities)


def conditional(condition: object, **alternatives: dict) -> dict:
    return {"type": "conditional", "condition": condition, "alternatives": alternatives}


def test_conditional_source_delegates_reads_offsets_and_dataset_source(datasets: Datasets) -> None:
    seed(datasets, "people", [{"_id": "1", "name": "a"}, {"_id": "2", "name": "b"}])
    config = {"_id": "copy", "type": "pipe",
              "source": conditional("prod", prod={"type": "dataset", "dataset": "people"},
                                    test={"type": "embedded", "entities": [{"_id": "x"}]})}
    pipe = build_runner(config, datasets)
    assert isinstance(pipe.source.chosen, DatasetSource)
    assert (pipe.source.supports_since, pipe.source.is_chronological) == (True, True)
    assert pipe.source.dataset_source == "people" and pipe.source_datasets == ["people"]
    first = pipe.run()
    assert (first.sync_type, first.processed, first.offset) == ("full", 2, 1)
    assert sorted(latest(datasets, "copy")) == ["1", "2"]
    seed(datasets, "people", [{"_id": "3", "name": "c"}])
    second = pipe.run()
    assert (second.sync_type, second.processed, second.offset) == ("incremental", 1, 2)
    assert pipe.source.end_offset() == 2 and pipe.source.is_populated() is False


def test_conditional_source_choosing_embedded_runs_full_every_time(datasets: Datasets) -> None:
    config = {"_id": "out", "type": "pipe",
              "source": conditional("test", prod={"type": "dataset", "dataset": "people"},
                                    test={"type": "embedded", "entities": [{"_id": "x"}, {"_id": "y"}]})}
    pipe = build_runner(config, datasets)
    assert pipe.source.supports_since is False and pipe.source_datasets == []
    assert pipe.run().sync_type == "full"
    assert pipe.run().sync_type == "full"
    assert sorted(latest(datasets, "out")) == ["x", "y"]


def test_conditional_transform_delegates_including_the_join_plan(datasets: Datasets) -> None:
    seed(datasets, "people", [{"_id": "1", "name": "a", "team": "t"}])
    seed(datasets, "teams", [{"_id": "t", "label": "Team T"}])
    hop = {"type": "dtl", "rules": {"default": [
        ["copy", "_id"],
        ["add", "team", ["first", ["hops", {"datasets": ["teams t"], "where": [["eq", "_S.team", "t._id"]]}]]]]}}
    upper = {"type": "dtl", "rules": {"default": [["copy", "_id"], ["add", "name", ["upper", "_S.name"]]]}}
    config = {"_id": "out", "type": "pipe", "source": {"type": "dataset", "dataset": "people"},
              "transform": [conditional("hop", hop=hop, upper=upper)]}
    pipe = build_runner(config, datasets)
    assert pipe.tracked_datasets == ["teams"]
    pipe.run()
    assert latest(datasets, "out")["1"]["team"]["label"] == "Team T"
    seed(datasets, "teams", [{"_id": "t", "label": "Team Tee"}])
    result = pipe.run()
    assert (result.processed, result.dependencies) == (0, 1)
    assert latest(datasets, "out")["1"]["team"]["label"] == "Team Tee"

    config["_id"] = "out2"
    config["transform"] = conditional("upper", hop=hop, upper=upper)
    other = build_runner(config, datasets)
    assert other.tracked_datasets == []
    other.run()
    assert latest(datasets, "out2")["1"]["name"] == "A"


def test_conditional_sink_delegates_writes_and_state(datasets: Datasets) -> None:
    seed(datasets, "people", [{"_id": "1"}, {"_id": "2"}])
    config = {"_id": "p", "type": "pipe", "source": {"type": "dataset", "dataset": "people"},
              "sink": conditional("prod", prod={"type": "dataset", "dataset": "target"}, test={"type": "null"})}
    pipe = build_runner(config, datasets)
    assert pipe.sink_dataset == "target"
    pipe.run()
    assert sorted(latest(datasets, "target")) == ["1", "2"]
    assert pipe.get_offset() == 1 and datasets.open("target").get_offset("pipe:p")["offset"] == 1
    assert datasets.open("target").populated is False  # the source dataset is not populated

    config["sink"] = conditional("test", prod={"type": "dataset", "dataset": "target"}, test={"type": "null"})
    null = build_runner(config, datasets)
    assert isinstance(null.sink.chosen, NullSink) and null.sink_dataset is None
    assert null.get_offset() is None
    null.run()
    assert null.get_offset() == 1
    seed(datasets, "people", [{"_id": "3"}])
    assert null.run().processed == 1


def test_conditional_values_need_not_be_strings(datasets: Datasets) -> None:
    config = {"_id": "p", "type": "pipe",
              "source": conditional(True, true={"type": "embedded", "entities": [{"_id": "t"}]},
                                    false={"type": "empty"})}
    pipe = build_runner(config, datasets)
    pipe.run()
    assert sorted(latest(datasets, "p")) == ["t"]


@pytest.mark.parametrize(("component", "config", "message"), [
    ("source", conditional("staging", prod={"type": "empty"}, test={"type": "empty"}),
     "pipe x: source.condition: the condition value 'staging' is not one of the alternatives ('prod', 'test')"),
    ("source", conditional("prod", prod={"type": "dataset"}), "pipe x: source.alternatives.prod: 'dataset' is a"),
    ("source", conditional("prod", prod={"type": "nope"}), "pipe x: source.alternatives.prod.type: unknown source"),
    ("source", {"type": "conditional", "alternatives": {"a": {"type": "empty"}}},
     "pipe x: source: 'condition' is a required property"),
    ("source", conditional("a", a=[]), "pipe x: source.alternatives.a: [] is not of type 'object'"),
    ("source", conditional(["a"], a={"type": "empty"}), "pipe x: source.condition"),
    ("transform", conditional("a", a={"type": "dtl", "rules": {"default": [["add", "a", ["concatt"]]]}}),
     'pipe x: transform[0].alternatives.a: rules.default[0][2]: unknown function "concatt"'),
    ("transform", conditional("b", a={"type": "emit_children"}), "pipe x: transform[0].condition"),
    ("sink", conditional("a", a={"type": "dataset", "dataset": "system:y"}),
     "a sink cannot write to an internal 'system:' dataset"),  # sink_dataset names "sink.dataset" itself
    ("sink", conditional("a", a={"type": "null", "batch_size": 0}), "pipe x: sink.alternatives.a.batch_size"),
])
def test_config_errors_name_the_path(datasets: Datasets, component: str, config: dict, message: str) -> None:
    pipe = {"_id": "x", "type": "pipe", "source": {"type": "empty"}, component: config}
    with pytest.raises(ConfigError) as caught:
        build_runner(pipe, datasets)
    assert message in str(caught.value)


def test_nested_conditionals_name_the_full_path(datasets: Datasets) -> None:
    inner = conditional("b", b={"type": "dataset", "dataset": "a/b"})
    with pytest.raises(ConfigError) as caught:
        build_runner({"_id": "x", "type": "pipe", "source": conditional("a", a=inner)}, datasets)
    assert "pipe x: source.alternatives.a.alternatives.b.dataset" in str(caught.value)
