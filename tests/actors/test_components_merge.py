"""The ``merge`` source: clusters by equality rules, output ids, ``$ids``, ``$replaced`` deletes, incremental runs."""

from __future__ import annotations

from typing import Any

import pytest

from actors import ConfigError, Datasets, PipeRunError, build_runner

INTERNAL = {"_ts", "_hash", "_previous", "_updated"}



def seed(datasets: Datasets, name: str, entities: list[dict[str, Any]], populated: bool | None = None) -> None:
    with datasets.writing(name) as dataset:
        dataset.write(entities, populated=populated)


def latest(datasets: Datasets, name: str = "m") -> dict[str, dict[str, Any]]:
    return {e["_id"]: {k: v for k, v in e.items() if k not in INTERNAL}
            for e in datasets.open(name).iter_entities(history=False)}


def live(datasets: Datasets, name: str = "m") -> dict[str, dict[str, Any]]:
    return {i: e for i, e in latest(datasets, name).items() if not e["_deleted"]}


def replaced(datasets: Datasets, name: str = "m") -> set[str]:
    return {i for i, e in latest(datasets, name).items() if e.get("$replaced") is True and e["_deleted"]}


def merge_pipe(source: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"_id": "m", "type": "pipe", "source": {"type": "merge", "version": 2, **source}, **extra}


def test_documented_example_three_datasets(datasets: Datasets) -> None:
    seed(datasets, "A", [{"_id": "a1", "f1": 1}, {"_id": "a2", "f1": 2}], populated=True)
    seed(datasets, "B", [{"_id": "b1", "f1": 1, "f2": "x"}, {"_id": "b2", "f1": 3}], populated=True)
    seed(datasets, "C", [{"_id": "c1", "f3": "X"}, {"_id": "c2", "_deleted": True, "f3": "Y"},
                         {"_id": "c3", "_deleted": True, "f3": "X"}], populated=True)
    runner = build_runner(merge_pipe({"datasets": ["A a", "B b", "C c"],
                                      "equality": [["eq", "a.f1", "b.f1"], ["eq", "b.f2", ["lower", "c.f3"]]]}),
                          datasets)
    assert runner.source_datasets == ["A", "B", "C"]
    result = runner.run()
    assert (result.sync_type, result.offset) == ("full", {"A": 1, "B": 1, "C": 2})
    assert latest(datasets) == {
        "0|a1|1|b1|2|c1": {"_id": "0|a1|1|b1|2|c1", "_deleted": False, "$ids": ["~:A:a1", "~:B:b1", "~:C:c1"],
                           "f1": [1, 1], "f2": "x", "f3": "X"},
        "0|a2": {"_id": "0|a2", "_deleted": False, "$ids": ["~:A:a2"], "f1": 2},
        "1|b2": {"_id": "1|b2", "_deleted": False, "$ids": ["~:B:b2"], "f1": 3},
        "2|c2": {"_id": "2|c2", "_deleted": True, "$ids": ["~:C:c2"], "f3": "Y"},
        "2|c3": {"_id": "2|c3", "_deleted": True, "$ids": ["~:C:c3"], "f3": "X"},
    }
    assert datasets.open("m").populated
    again = runner.run()
    assert (again.sync_type, again.processed, again.changes) == ("incremental", 0, 0)


def test_two_datasets_incremental_join_replaces_the_single_ids(datasets: Datasets) -> None:
    seed(datasets, "A", [{"_id": "a1", "k": "x"}, {"_id": "a2", "k": "y"}])
    seed(datasets, "B", [{"_id": "b1", "k": "z"}])
    runner = build_runner(merge_pipe({"datasets": ["A a", "B b"], "equality": [["eq", "a.k", "b.k"]]}), datasets)
    runner.run()
    assert set(live(datasets)) == {"0|a1", "0|a2", "1|b1"}

    seed(datasets, "B", [{"_id": "b1", "k": "x"}])  # b1 now joins a1
    result = runner.run()
    assert result.sync_type == "incremental"
    assert set(live(datasets)) == {"0|a1|1|b1", "0|a2"}
    assert replaced(datasets) == {"0|a1", "1|b1"}
    assert live(datasets)["0|a1|1|b1"]["k"] == ["x", "x"]


def test_transitive_merge_and_a_bridge_that_splits_the_cluster(datasets: Datasets) -> None:
    seed(datasets, "A", [{"_id": "a1", "x": 1}])
    seed(datasets, "B", [{"_id": "b1", "x": 1, "y": "p"}])
    seed(datasets, "C", [{"_id": "c1", "y": "p"}, {"_id": "c2", "y": "q"}])
    source = {"datasets": ["A a", "B b", "C c"], "equality_sets": [["a.x", "b.x"], ["b.y", "c.y"]]}
    runner = build_runner(merge_pipe(source), datasets)
    runner.run()
    assert set(live(datasets)) == {"0|a1|1|b1|2|c1", "2|c2"}

    seed(datasets, "B", [{"_id": "b1", "x": 1, "y": "q"}])  # the bridge moves from c1 to c2
    runner.run()
    assert set(live(datasets)) == {"0|a1|1|b1|2|c2", "2|c1"}
    assert replaced(datasets) == {"0|a1|1|b1|2|c1", "2|c2"}

    seed(datasets, "B", [{"_id": "b1", "x": 2, "y": None}])  # b1 now links nothing: three singletons
    runner.run()
    assert set(live(datasets)) == {"0|a1", "1|b1", "2|c1", "2|c2"}
    assert "0|a1|1|b1|2|c2" in replaced(datasets)
    assert live(datasets)["1|b1"]["y"] is None  # null values are kept


def test_a_deleted_member_leaves_alone_and_returns(datasets: Datasets) -> None:
    seed(datasets, "A", [{"_id": "a1", "k": 1}])
    seed(datasets, "B", [{"_id": "b1", "k": 1}, {"_id": "b2", "k": 1}])
    runner = build_runner(merge_pipe({"datasets": ["A a", "B b"], "equality": [["eq", "a.k", "b.k"]]}), datasets)
    runner.run()
    assert set(live(datasets)) == {"0|a1|1|b1|1|b2"}

    seed(datasets, "A", [{"_id": "a1", "_deleted": True, "k": 1}])  # the hub is gone: b1 and b2 fall apart
    runner.run()
    result = latest(datasets)
    assert result["0|a1"]["_deleted"] is True and result["0|a1"]["$ids"] == ["~:A:a1"]
    assert set(live(datasets)) == {"1|b1", "1|b2"}
    assert "0|a1|1|b1|1|b2" in replaced(datasets)

    seed(datasets, "A", [{"_id": "a1", "k": 1}])
    runner.run()
    assert set(live(datasets)) == {"0|a1|1|b1|1|b2"}
    assert replaced(datasets) >= {"0|a1", "1|b1", "1|b2"}


def test_identity_first_compact_strategy_and_ids_of_merged_entities(datasets: Datasets) -> None:
    seed(datasets, "A", [{"_id": "a1", "email": ["A@X", None], "x": 1}])
    seed(datasets, "B", [{"_id": "b1", "mail": "a@x", "y": [2, 1]},
                         {"_id": "b9", "$ids": ["p", "q"], "mail": "a@x", "y": 2, "z": [3, 3]}])
    source = {"datasets": ["B b", "A a"], "identity": "first", "strategy": "compact",
              "equality": [["eq", ["lower", "a.email"], "b.mail"]]}
    runner = build_runner(merge_pipe(source), datasets)
    runner.run()
    assert live(datasets) == {"b1": {"_id": "b1", "_deleted": False, "$ids": ["~:B:b1", "p", "q", "~:A:a1"],
                                     "email": ["A@X", None], "x": 1, "y": [2, 1], "z": 3, "mail": "a@x"}}

    seed(datasets, "B", [{"_id": "b1", "mail": "other"}])  # the first id leaves: the output id changes
    runner.run()
    assert set(live(datasets)) == {"b1", "b9"}
    assert live(datasets)["b9"]["$ids"] == ["p", "q", "~:A:a1"]
    assert replaced(datasets) == set()  # "b1" is still in use (by b1 alone)


def test_list_strategy_keeps_the_members(datasets: Datasets) -> None:
    seed(datasets, "A", [{"_id": "a1", "k": 1}])
    seed(datasets, "B", [{"_id": "b1", "k": 1, "v": "b"}])
    source = {"datasets": ["A a", "B b"], "strategy": "list", "equality": [["eq", "a.k", "b.k"]]}
    runner = build_runner(merge_pipe(source), datasets)
    runner.run()
    assert live(datasets)["0|a1|1|b1"]["$merged"] == [{"_id": "a1", "k": 1}, {"_id": "b1", "k": 1, "v": "b"}]
    runner = build_runner(merge_pipe({**source, "include_internal_properties": True}), datasets)
    [merged] = runner.preview("source")
    assert {"_ts", "_hash", "_updated", "_deleted"} <= merged["$merged"][0].keys()


def test_incremental_runs_batches_resume_and_full_rerun(datasets: Datasets) -> None:
    seed(datasets, "A", [{"_id": f"a{i}", "k": i} for i in range(6)])
    seed(datasets, "B", [{"_id": f"b{i}", "k": i} for i in range(0, 6, 2)])
    pipe = merge_pipe({"datasets": ["A a", "B b"], "equality": [["eq", "a.k", "b.k"]]}, batch_size=2)
    runner = build_runner(pipe, datasets)
    calls = iter(range(100))
    stopped = runner.run(should_stop=lambda: next(calls) >= 2)
    assert stopped.stopped and len(live(datasets)) == 4
    runner.run()
    expected = {"0|a0|1|b0", "0|a1", "0|a2|1|b2", "0|a3", "0|a4|1|b4", "0|a5"}
    assert set(live(datasets)) == expected and runner.get_offset() == {"A": 5, "B": 2}
    assert runner.run().processed == 0

    seed(datasets, "B", [{"_id": "b1", "k": 1}, {"_id": "b0", "k": 9}])
    result = runner.run()
    assert result.sync_type == "incremental" and result.offset == {"A": 5, "B": 4}
    expected = {"0|a0", "1|b0", "0|a1|1|b1", "0|a2|1|b2", "0|a3", "0|a4|1|b4", "0|a5"}
    assert set(live(datasets)) == expected
    assert replaced(datasets) == {"0|a0|1|b0", "0|a1"}

    full = runner.run(kind="full")
    assert full.sync_type == "full" and full.deleted == 0 and set(live(datasets)) == expected


def test_a_preview_or_failed_batch_does_not_lose_superseded_ids(datasets: Datasets) -> None:
    seed(datasets, "A", [{"_id": "a1", "k": 1}])
    seed(datasets, "B", [{"_id": "b1", "k": 2}])
    runner = build_runner(merge_pipe({"datasets": ["A a", "B b"], "equality": [["eq", "a.k", "b.k"]]}), datasets)
    runner.run()
    seed(datasets, "B", [{"_id": "b1", "k": 1}])
    assert [e["_id"] for e in runner.preview("source", since=runner.get_offset())] == ["0|a1|1|b1", "0|a1", "1|b1"]
    runner.run()  # the preview's mapping is rolled back to the committed offset
    assert set(live(datasets)) == {"0|a1|1|b1"} and replaced(datasets) == {"0|a1", "1|b1"}


def test_max_merged_fails_the_run(datasets: Datasets) -> None:
    seed(datasets, "A", [{"_id": f"a{i}", "k": 1} for i in range(3)])
    runner = build_runner(merge_pipe({"datasets": ["A a"], "equality": [["eq", "a.k", "a.k"]], "max_merged": 2}),
                          datasets)
    with pytest.raises(PipeRunError, match="max_merged"):
        runner.run()
    runner = build_runner(merge_pipe({"datasets": ["A a"], "equality": [["eq", "a.k", "a.k"]]}), datasets)
    runner.run()
    assert set(live(datasets)) == {"0|a0|0|a1|0|a2"}


@pytest.mark.parametrize(("source", "where"), [
    ({"datasets": []}, "source.datasets"),
    ({"datasets": ["A"]}, "source.datasets[0]"),
    ({"datasets": ["A a", "B a"]}, "source.datasets[1]"),
    ({"datasets": ["A a", "A b"]}, "source.datasets[1]"),
    ({"datasets": ["A a", "B b"], "equality": [["eq", "a.x", "c.x"]]}, "source.equality[0][2]"),
    ({"datasets": ["A a", "B b"], "equality": [["eq", ["concat", "a.x", "b.x"], "b.x"]]}, "source.equality[0][1]"),
    ({"datasets": ["A a", "B b"], "equality": [["eq", "_S.x", "b.x"]]}, "source.equality[0][1]"),
    ({"datasets": ["A a", "B b"], "equality": [["gt", "a.x", "b.x"]]}, "source.equality[0][0]"),
    ({"datasets": ["A a", "B b"], "equality": [["eq", ["no-such-fn", "a.x"], "b.x"]]}, "source.equality[0][1]"),
    ({"datasets": ["A a", "B b"], "equality_sets": [["a.x", "b.x", "q"]]}, "source.equality_sets[0][2]"),
    ({"datasets": ["A a"], "identity": "last"}, "source.identity"),
    ({"datasets": ["A a"], "strategy": "union"}, "source.strategy"),
    ({"datasets": ["A a"], "initial_datasets": ["a"]}, "source.initial_datasets"),
])
def test_config_errors_name_the_path(datasets: Datasets, source: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build_runner(merge_pipe(source), datasets)
    assert raised.value.where == f"pipe m: {where}"


def test_ids_are_nis_with_namespaced_identifiers(datasets: Datasets) -> None:
    seed(datasets, "A", [{"_id": "crm:1", "k": 1}])
    seed(datasets, "B", [{"_id": "erp:7", "k": 1}])
    pipe = merge_pipe({"datasets": ["A a", "B b"], "equality": [["eq", "a.k", "b.k"]]}, namespaced_identifiers=True)
    build_runner(pipe, datasets).run()
    assert live(datasets)["0|crm:1|1|erp:7"]["$ids"] == ["~:crm:1", "~:erp:7"]


def test_ids_are_nis_in_their_datasets_namespace_and_join_namespaced_references(datasets: Datasets) -> None:
    seed(datasets, "erp-customer", [{"_id": "11", "vat": "NO-1"}, {"_id": "12", "vat": "NO-2"}])
    seed(datasets, "crm-customer", [{"_id": "crm-customer:c7", "vat": "NO-1"}])  # already in its namespace
    seed(datasets, "order", [{"_id": "o1", "customer_id": "~:erp-customer:11"},
                             {"_id": "o2", "customer_id": "~:crm-customer:c7"},
                             {"_id": "o3", "customer_id": "~:erp-customer:12"}])
    build_runner(merge_pipe({"datasets": ["erp-customer e", "crm-customer c"],
                             "equality": [["eq", "e.vat", "c.vat"]]}), datasets).run()
    assert {i: e["$ids"] for i, e in live(datasets).items()} == {
        "0|11|1|crm-customer:c7": ["~:erp-customer:11", "~:crm-customer:c7"], "0|12": ["~:erp-customer:12"]}
    joined = {"_id": "joined", "type": "pipe", "source": {"type": "dataset", "dataset": "m"},
              "transform": {"type": "dtl", "rules": {"default": [
                  ["add", "orders", ["sorted", ["hops", {"datasets": ["order o"],
                                                         "where": [["eq", "_S.$ids", "o.customer_id"]],
                                                         "return": "o._id"}]]]]}}}
    build_runner(joined, datasets).run()
    assert {i: e["orders"] for i, e in live(datasets, "joined").items()} == {
        "0|11|1|crm-customer:c7": ["o1", "o2"], "0|12": ["o3"]}
