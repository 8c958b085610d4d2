"""The ``emit_children`` transform: children out, parents not, deletes follow the parent."""

from __future__ import annotations

import pytest

from actors import ConfigError, Datasets, build_runner


def latest(datasets: Datasets, name: str) -> dict[str, dict]:
    return {e["_id"]: e for e in datasets.open(name).iter_entities(history=False)}


def seed(datasets: Datasets, name: str, entities: list[dict]) -> None:
    with datasets.writing(name) as dataset:
        dataset.write(entities)


CHILDREN = {"_id": "children", "type": "pipe", "source": {"type": "dataset", "dataset": "parents"},
            "transform": {"type": "emit_children"}}


def test_emits_children_with_an_id_and_not_the_parent(datasets: Datasets) -> None:
    seed(datasets, "parents", [
        {"_id": "p1", "$children": [{"_id": "c1", "v": 1}, {"v": "no id"}, "not a dict", {"_id": "c2", "v": 2}]},
        {"_id": "p2", "name": "no children"},
        {"_id": "p3", "$children": {"_id": "not a list"}},
    ])
    runner = build_runner(CHILDREN, datasets)
    assert [e["_id"] for e in runner.preview("after-transforms")] == ["c1", "c2"]
    result = runner.run()
    assert (result.processed, result.changes) == (3, 2)
    assert {i: e["v"] for i, e in latest(datasets, "children").items()} == {"c1": 1, "c2": 2}


def test_deleted_children_and_children_of_deleted_parents_are_deletes(datasets: Datasets) -> None:
    seed(datasets, "parents", [{"_id": "p1", "$children": [{"_id": "c1"}, {"_id": "c2"}]},
                               {"_id": "p2", "$children": [{"_id": "c3"}]}])
    runner = build_runner(CHILDREN, datasets)
    runner.run()
    seed(datasets, "parents", [
        {"_id": "p1", "$children": [{"_id": "c1"}, {"_id": "c2", "_deleted": True}]},  # as track_children writes
        {"_id": "p2", "_deleted": True, "$children": [{"_id": "c3"}]},
    ])
    result = runner.run()
    assert (result.sync_type, result.processed, result.changes) == ("incremental", 2, 2)
    assert {i: e["_deleted"] for i, e in latest(datasets, "children").items()} == {"c1": False, "c2": True,
                                                                                  "c3": True}


def test_works_after_dtl_create_child_in_a_chain(datasets: Datasets) -> None:
    seed(datasets, "parents", [{"_id": "p", "items": [{"id": "a", "n": 1}, {"id": "b", "n": 2}]}])
    config = {**CHILDREN, "transform": [
        {"type": "dtl", "rules": {"default": [["copy", "_id"], ["create-child", ["apply", "item", "_S.items"]]],
                                  "item": [["add", "_id", "_S.id"], ["copy", "n"]]}},
        {"type": "emit_children"},
    ]}
    build_runner(config, datasets).run()
    assert {i: e["n"] for i, e in latest(datasets, "children").items()} == {"a": 1, "b": 2}


@pytest.mark.parametrize(("transform", "message"), [
    ({"type": "emit_children", "children": "$kids"}, "pipe children: transform[1]: Additional properties"),
    ({"type": "emit_children", "side_effects": "no"}, "pipe children: transform[1].side_effects"),
])
def test_config_errors_name_the_path(datasets: Datasets, transform: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_runner({**CHILDREN, "transform": [{"type": "dtl", "rules": {"default": []}}, transform]}, datasets)
    assert message in str(caught.value)
