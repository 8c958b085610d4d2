"""The pipe engine end to end on real datasets: runs, offsets, deletion tracking, dependency tracking."""

from __future__ import annotations

import pytest

from actors import ConfigError, Datasets, PipeRunError, build_runner

CUSTOMERS = [
    {"_id": "1", "first_name": "John", "last_name": "Smith", "age": 42},
    {"_id": "2", "first_name": "Maria", "last_name": "Hawkins", "age": 32},
    {"_id": "3", "first_name": "Pam", "last_name": "Curie", "age": 21},
]
ORDERS = [
    {"_id": "1000", "customer_id": "1", "items": [{"ean": "a", "price": "~f22.10", "quantity": 2}],
     "discount": "~f4.20"},
    {"_id": "1001", "customer_id": "1", "items": [{"ean": "b", "price": "~f73.50", "quantity": 1},
                                                  {"ean": "c", "price": "~f10.40", "quantity": 1}]},
    {"_id": "1002", "customer_id": "2", "items": [{"ean": "d", "price": "~f39.95", "quantity": 1}]},
]
CUSTOMERS_WITH_ORDERS = {
    "_id": "customers-with-orders", "type": "pipe",
    "source": {"type": "dataset", "dataset": "customers"},
    "transform": {"type": "dtl", "rules": {
        "default": [
            ["copy", "_id"],
            ["add", "name", ["concat", ["list", "_S.first_name", " ", "_S.last_name"]]],
            ["add", "orders", ["apply", "order", ["hops", {"datasets": ["orders o"],
                                                           "where": [["eq", "_S._id", "o.customer_id"]]}]]],
            ["add", "order_count", ["count", "_T.orders"]],
            ["add", "total", ["sum", ["map", "_.total", "_T.orders"]]],
            ["filter", ["gt", "_T.total", "~f25.00"]],
        ],
        "order": [
            ["copy", "items"],
            ["add", "total", ["minus", ["coalesce", ["list", "_S.discount", 0]],
                              ["sum", ["map", ["multiply", "_.quantity", "_.price"], "_S.items"]]]],
        ],
    }},
}


def embedded(pipe_id: str, entities: list[dict]) -> dict:
    return {"_id": pipe_id, "type": "pipe", "source": {"type": "embedded", "entities": entities}}



def latest(datasets: Datasets, name: str) -> dict[str, dict]:
    return {e["_id"]: e for e in datasets.open(name).iter_entities(history=False)}


def test_tutorial_result_and_dependency_tracking_reprocess_only_what_changed(datasets: Datasets) -> None:
    build_runner(embedded("customers", CUSTOMERS), datasets).run()
    build_runner(embedded("orders", ORDERS), datasets).run()
    pipe = build_runner(CUSTOMERS_WITH_ORDERS, datasets)
    assert pipe.tracked_datasets == ["orders"]
    first = pipe.run()
    assert (first.sync_type, first.processed, first.changes) == ("full", 3, 2)
    result = latest(datasets, "customers-with-orders")
    assert sorted(result) == ["1", "2"]  # Pam is filtered out
    assert result["1"]["total"] == "~f123.90" and result["1"]["order_count"] == 2
    assert result["2"]["total"] == "~f39.95"
    old_maria = result["2"]["_updated"]

    new_order = {"_id": "1003", "customer_id": "2", "items": [{"ean": "e", "price": "~f19.95", "quantity": 1}]}
    build_runner(embedded("orders", [*ORDERS, new_order]), datasets).run()
    assert pipe.queues()["dependencies"] == {"orders": 1}
    second = pipe.run()
    assert (second.sync_type, second.processed, second.dependencies, second.changes) == ("incremental", 0, 1, 1)
    result = latest(datasets, "customers-with-orders")
    assert result["2"]["total"] == "~f59.90" and result["2"]["order_count"] == 2
    assert result["2"]["_previous"] == old_maria
    assert len(datasets.open("customers-with-orders").versions("1")) == 1
    assert pipe.run().changes == 0

    # a deleted order is traced through its previous version
    build_runner(embedded("orders", ORDERS[:2]), datasets).run()
    pipe.run()
    assert latest(datasets, "customers-with-orders")["2"]["_deleted"] is True  # filtered now: deleted


def test_embedded_runs_are_full_runs_with_deletion_tracking(datasets: Datasets) -> None:
    build_runner(embedded("people", CUSTOMERS), datasets).run()
    result = build_runner(embedded("people", CUSTOMERS[:2]), datasets).run()
    assert (result.sync_type, result.deleted) == ("full", 1)
    people = latest(datasets, "people")
    assert people["3"]["_deleted"] is True and people["3"]["first_name"] == "Pam"
    assert datasets.open("people").populated


def test_a_sink_without_a_type_is_a_dataset_sink(datasets: Datasets) -> None:
    config = {**embedded("people", CUSTOMERS), "sink": {"dataset": "folk", "deletion_tracking": False}}
    runner = build_runner(config, datasets)
    assert runner.config["sink"] == {"type": "dataset", "dataset": "folk", "deletion_tracking": False}
    assert runner.run().changes == len(CUSTOMERS)
    assert sorted(latest(datasets, "folk")) == sorted(c["_id"] for c in CUSTOMERS)
    named_after_the_pipe = build_runner({**embedded("people", CUSTOMERS), "sink": {}}, datasets)
    assert named_after_the_pipe.sink_dataset == "people"


def test_dataset_to_dataset_is_incremental_and_propagates_deletes(datasets: Datasets) -> None:
    build_runner(embedded("people", CUSTOMERS), datasets).run()
    copy = build_runner({"_id": "copy", "type": "pipe", "source": {"type": "dataset", "dataset": "people"},
                         "transform": {"type": "dtl", "rules": {"default": [["copy", "*"]]}}}, datasets)
    assert copy.run().changes == 3
    assert copy.get_offset() == 2
    build_runner(embedded("people", CUSTOMERS[1:]), datasets).run()
    second = copy.run()
    assert (second.sync_type, second.processed, second.changes) == ("incremental", 1, 1)
    assert latest(datasets, "copy")["1"]["_deleted"] is True
    copy.set_offset("")
    assert copy.get_offset() is None
    assert copy.run().sync_type == "full"


def test_a_failing_run_keeps_the_offset_and_names_the_entity(datasets: Datasets) -> None:
    build_runner(embedded("people", CUSTOMERS), datasets).run()
    failing = build_runner({"_id": "f", "type": "pipe", "batch_size": 1,
                            "source": {"type": "dataset", "dataset": "people"},
                            "transform": {"type": "dtl", "rules": {"default": [
                                ["copy", "_id"], ["if", ["eq", "_S._id", "2"], ["fail!", "bad customer"]]]}}},
                           datasets)
    with pytest.raises(PipeRunError, match="bad customer") as caught:
        failing.run()
    assert caught.value.entity["_id"] == "2"
    assert failing.get_offset() == 0  # the first batch committed, the failing one did not
    assert sorted(latest(datasets, "f")) == ["1"]


def test_stop_between_batches_and_preview(datasets: Datasets) -> None:
    build_runner(embedded("people", CUSTOMERS), datasets).run()
    pipe = build_runner({"_id": "p", "type": "pipe", "batch_size": 1,
                         "source": {"type": "dataset", "dataset": "people"}}, datasets)
    calls = iter([False, True])
    result = pipe.run(should_stop=lambda: next(calls, True))
    assert result.stopped and pipe.get_offset() == 0
    assert [e["_id"] for e in pipe.preview("sink", limit=2)] == ["1", "2"]
    pipe.set_offset_to_end()
    assert pipe.get_offset() == 2


def test_empty_source_fails_when_asked_and_deletes_nothing(datasets: Datasets) -> None:
    build_runner(embedded("people", CUSTOMERS), datasets).run()
    pipe = build_runner({"_id": "people", "type": "pipe", "source": {"type": "empty", "if_source_empty": "fail"}},
                        datasets)
    with pytest.raises(PipeRunError, match="empty"):
        pipe.run()
    assert len(latest(datasets, "people")) == 3


@pytest.mark.parametrize(("config", "message"), [
    ({"_id": "x", "type": "pipe", "source": {"type": "nope"}}, "pipe x: source.type: unknown source type 'nope'"),
    ({"_id": "x", "type": "pipe", "source": {"type": "dataset"}}, "pipe x: source: 'dataset' is a required"),
    ({"_id": "x", "type": "pipe", "source": {"type": "embedded", "entities": [1]}}, "pipe x: source.entities[0]"),
    ({"_id": "x", "type": "pipe", "source": {"type": "empty"},
      "transform": {"type": "dtl", "rules": {"default": [["add", "a", ["concatt", "x"]]]}}},
     'pipe x: transform[0]: rules.default[0][2]: unknown function "concatt"'),
    ({"_id": "x", "type": "pipe", "source": {"type": "empty"}, "sink": {"type": "dataset", "dataset": "system:y"}},
     "pipe x: sink.dataset"),
    ({"_id": "a/b", "type": "pipe"}, "without '/'"),
    ({"_id": "x", "type": "system"}, "pipe x: type"),
])
def test_config_errors_name_the_pipe_and_the_path(datasets: Datasets, config: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_runner(config, datasets)
    assert message in str(caught.value)


def test_a_hop_into_a_dataset_that_does_not_exist_reads_as_empty(datasets: Datasets) -> None:
    build_runner(embedded("customers", CUSTOMERS), datasets).run()
    pipe = build_runner({**CUSTOMERS_WITH_ORDERS, "transform": {"type": "dtl", "rules": {"default": [
        ["copy", "_id"],
        ["add", "orders", ["hops", {"datasets": ["no-such-orders o"], "where": [["eq", "_S._id", "o.customer_id"]]}]],
        ["add", "order_count", ["count", "_T.orders"]],
    ]}}}, datasets)
    result = pipe.run()
    assert (result.processed, result.changes) == (3, 3) and not datasets.exists("no-such-orders")
    assert {e["_id"]: (e["orders"], e["order_count"]) for e in latest(datasets, "customers-with-orders").values()
            } == {"1": ([], 0), "2": ([], 0), "3": ([], 0)}
    build_runner(embedded("no-such-orders", ORDERS), datasets).run()  # it appears: dependency tracking sees it
    again = pipe.run()
    assert again.dependencies == 2
    assert latest(datasets, "customers-with-orders")["1"]["order_count"] == 2
