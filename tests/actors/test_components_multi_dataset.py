"""The ``union_datasets`` and ``merge_datasets`` sources: results, per-dataset offsets, populated, config errors."""

from __future__ import annotations

import pytest

from actors import ConfigError, Datasets, build_runner


def latest(datasets: Datasets, name: str) -> dict[str, dict]:
    return {e["_id"]: e for e in datasets.open(name).iter_entities(history=False)}


def live(datasets: Datasets, name: str) -> dict[str, dict]:
    return {i: e for i, e in latest(datasets, name).items() if not e["_deleted"]}


def seed(datasets: Datasets, name: str, entities: list[dict], populated: bool | None = None) -> None:
    with datasets.writing(name) as dataset:
        dataset.write(entities, populated=populated)


def pipe(pipe_id: str, source: dict, **extra: object) -> dict:
    return {"_id": pipe_id, "type": "pipe", "source": source, **extra}


# -- union_datasets ------------------------------------------------------------------------------------------

def test_union_prefixes_ids_reads_in_list_order_and_keeps_an_offset_per_dataset(datasets: Datasets) -> None:
    seed(datasets, "a", [{"_id": "1", "v": "a1"}, {"_id": "2", "v": "a2"}])
    seed(datasets, "b", [{"_id": "1", "v": "b1"}])
    runner = build_runner(pipe("u", {"type": "union_datasets", "datasets": ["b", "a", "c"]}, batch_size=2), datasets)
    assert runner.source_datasets == ["b", "a", "c"] and runner.source.dataset_source is None
    assert [e["_id"] for e in runner.preview("source")] == ["b:1", "a:1", "a:2"]
    first = runner.run()
    assert (first.sync_type, first.processed, first.offset) == ("full", 3, {"a": 1, "b": 0})
    assert {i: e["v"] for i, e in live(datasets, "u").items()} == {"b:1": "b1", "a:1": "a1", "a:2": "a2"}
    assert runner.run().processed == 0

    seed(datasets, "a", [{"_id": "2", "v": "a2'"}])
    seed(datasets, "c", [{"_id": "9", "v": "c9"}])
    seed(datasets, "b", [{"_id": "1", "_deleted": True}])
    second = runner.run()
    assert (second.sync_type, second.processed, second.offset) == ("incremental", 3, {"a": 2, "b": 1, "c": 0})
    result = latest(datasets, "u")
    assert result["b:1"]["_deleted"] is True and result["a:2"]["v"] == "a2'" and result["c:9"]["v"] == "c9"
    assert runner.source.end_offset() == {"a": 2, "b": 1, "c": 0}


def test_union_offset_is_checkpointed_per_batch_and_resumes(datasets: Datasets) -> None:
    seed(datasets, "a", [{"_id": str(i)} for i in range(5)])
    seed(datasets, "b", [{"_id": str(i)} for i in range(3)])
    runner = build_runner(pipe("u", {"type": "union_datasets", "datasets": ["a", "b"]}, batch_size=3), datasets)
    calls = iter(range(100))
    result = runner.run(should_stop=lambda: next(calls) >= 2)  # two batches then stop
    assert result.stopped and runner.get_offset() == {"a": 4, "b": 0}
    resumed = runner.run()
    assert (resumed.sync_type, resumed.processed, resumed.offset) == ("incremental", 2, {"a": 4, "b": 2})
    assert len(live(datasets, "u")) == 8


def test_union_without_prefix_with_history_and_initial_since_value(datasets: Datasets) -> None:
    seed(datasets, "a", [{"_id": "1", "v": 1}])
    seed(datasets, "a", [{"_id": "1", "v": 2}])
    seed(datasets, "b", [{"_id": "x"}])
    source = {"type": "union_datasets", "datasets": ["a", "b"], "prefix_ids": False, "include_previous_versions": True}
    runner = build_runner(pipe("u", source), datasets)
    assert [(e["_id"], e.get("v")) for e in runner.preview("source")] == [("1", 1), ("1", 2), ("x", None)]
    runner = build_runner(pipe("u", {**source, "initial_since_value": "0,-1"}), datasets)
    assert [(e["_id"], e.get("v")) for e in runner.preview("source", since="0")] == [("1", 2), ("x", None)]
    result = runner.run()
    assert result.processed == 2 and sorted(live(datasets, "u")) == ["1", "x"]
    runner.set_offset({"a": 0, "b": 0})
    assert runner.run().processed == 1


def test_union_full_run_deletes_what_vanished_and_set_offset_to_end(datasets: Datasets) -> None:
    seed(datasets, "a", [{"_id": "1"}, {"_id": "2"}])
    runner = build_runner(pipe("u", {"type": "union_datasets", "datasets": ["a"]}), datasets)
    runner.run()
    datasets.delete("a")
    seed(datasets, "a", [{"_id": "2"}])
    runner.run(kind="full")
    assert sorted(live(datasets, "u")) == ["a:2"]
    seed(datasets, "a", [{"_id": "3"}])
    runner.set_offset_to_end()
    assert runner.get_offset() == {"a": 1} and runner.run().processed == 0


def test_union_populated_follows_initial_datasets(datasets: Datasets) -> None:
    seed(datasets, "a", [{"_id": "1"}], populated=True)
    seed(datasets, "b", [{"_id": "1"}])
    union = {"type": "union_datasets", "datasets": ["a", "b", "c"]}
    build_runner(pipe("u1", union), datasets).run()
    assert datasets.open("u1").populated is False  # b is not populated
    build_runner(pipe("u2", {**union, "initial_datasets": ["a", "c"]}), datasets).run()
    assert datasets.open("u2").populated is True  # c is missing, and missing ones are ignored by default
    strict = build_runner(pipe("u3", {**union, "initial_datasets": ["a", "c"], "ignore_non_existent_datasets": False}),
                          datasets)
    strict.run()
    assert datasets.open("u3").populated is False


# -- merge_datasets ------------------------------------------------------------------------------------------

def test_merge_datasets_latest_emits_the_newest_version_of_each_id_in_ts_order(datasets: Datasets) -> None:
    seed(datasets, "a", [{"_id": "1", "v": "a1"}, {"_id": "2", "v": "a2"}])
    seed(datasets, "b", [{"_id": "2", "v": "b2"}, {"_id": "3", "v": "b3"}])
    seed(datasets, "a", [{"_id": "3", "v": "a3"}])
    runner = build_runner(pipe("m", {"type": "merge_datasets", "datasets": ["a", "b"]}, batch_size=2), datasets)
    assert [(e["_id"], e["v"]) for e in runner.preview("source")] == [("1", "a1"), ("2", "b2"), ("3", "a3")]
    first = runner.run()
    assert (first.processed, first.offset) == (3, {"a": 2, "b": 1})
    assert {i: e["v"] for i, e in live(datasets, "m").items()} == {"1": "a1", "2": "b2", "3": "a3"}

    seed(datasets, "a", [{"_id": "2", "v": "a2'"}])  # now the newest of id 2
    seed(datasets, "b", [{"_id": "1", "_deleted": True}])  # the newest of id 1 is a delete
    second = runner.run()
    assert (second.sync_type, second.processed, second.offset) == ("incremental", 2, {"a": 3, "b": 2})
    result = latest(datasets, "m")
    assert result["2"]["v"] == "a2'" and result["1"]["_deleted"] is True and result["3"]["v"] == "a3"
    assert runner.run().processed == 0


def test_merge_datasets_skips_superseded_reads_but_still_moves_the_offset(datasets: Datasets) -> None:
    seed(datasets, "a", [{"_id": "1", "v": "a1"}])
    seed(datasets, "b", [{"_id": "1", "v": "b1"}])
    runner = build_runner(pipe("m", {"type": "merge_datasets", "datasets": ["a", "b"]}), datasets)
    runner.run()
    seed(datasets, "a", [{"_id": "9", "v": "a9"}, {"_id": "1", "v": "a1 again"}])
    seed(datasets, "b", [{"_id": "1", "v": "b1'"}])  # newer than a's second version: a's is skipped
    result = runner.run()
    assert (result.processed, result.offset) == (2, {"a": 2, "b": 1})
    assert {i: e["v"] for i, e in live(datasets, "m").items()} == {"1": "b1'", "9": "a9"}

    seed(datasets, "b", [{"_id": "5", "v": "b5"}])
    seed(datasets, "a", [{"_id": "5", "v": "a5"}, {"_id": "6", "v": "a6"}])
    seed(datasets, "b", [{"_id": "6", "v": "b6"}])  # the last one read: the offset moves past the skipped a:6
    result = runner.run()
    assert result.offset == {"a": 4, "b": 3}
    assert runner.run().processed == 0


def test_merge_datasets_all_keys_each_datasets_version_by_dataset(datasets: Datasets) -> None:
    seed(datasets, "a", [{"_id": "1", "x": 1}, {"_id": "2", "x": 2}])
    seed(datasets, "b", [{"_id": "1", "y": 1}])
    runner = build_runner(pipe("m", {"type": "merge_datasets", "datasets": ["a", "b"], "strategy": "all"}), datasets)
    runner.run()
    result = live(datasets, "m")
    assert {k: v for k, v in result["1"].items() if k[:1] != "_"} == {"a": {"_id": "1", "x": 1},
                                                                      "b": {"_id": "1", "y": 1}}
    assert {k: v for k, v in result["2"].items() if k[:1] != "_"} == {"a": {"_id": "2", "x": 2}}
    seed(datasets, "a", [{"_id": "1", "_deleted": True}, {"_id": "2", "_deleted": True}])
    second = runner.run()
    assert second.processed == 2
    result = latest(datasets, "m")
    assert {k: v for k, v in result["1"].items() if k[:1] != "_"} == {"b": {"_id": "1", "y": 1}}
    assert result["2"]["_deleted"] is True


def test_merge_datasets_offsets_survive_a_missing_dataset(datasets: Datasets) -> None:
    seed(datasets, "b", [{"_id": "1"}])
    runner = build_runner(pipe("m", {"type": "merge_datasets", "datasets": ["a", "b"]}), datasets)
    assert runner.run().offset == {"b": 0}
    seed(datasets, "a", [{"_id": "2"}])
    result = runner.run()
    assert (result.sync_type, result.processed, result.offset) == ("incremental", 1, {"a": 0, "b": 0})
    assert runner.source.is_populated() is False


@pytest.mark.parametrize(("source", "message"), [
    ({"type": "union_datasets"}, "pipe x: source: 'datasets' is a required property"),
    ({"type": "union_datasets", "datasets": []}, "pipe x: source.datasets: [] should be non-empty"),
    ({"type": "union_datasets", "datasets": ["a", "a"]}, "pipe x: source.datasets: ['a', 'a'] has non-unique"),
    ({"type": "union_datasets", "datasets": ["a", "b/c"]}, "pipe x: source.datasets[1]"),
    ({"type": "union_datasets", "datasets": ["a"], "prefix_ids": "no"}, "pipe x: source.prefix_ids"),
    ({"type": "union_datasets", "datasets": ["a"], "initial_datasets": ["b"]},
     "pipe x: source.initial_datasets: 'b' is not one of the source's datasets"),
    ({"type": "merge_datasets", "datasets": ["a"], "strategy": "newest"}, "pipe x: source.strategy"),
    ({"type": "merge_datasets", "datasets": "a"}, "pipe x: source.datasets: 'a' is not of type 'array'"),
])
def test_config_errors_name_the_path(datasets: Datasets, source: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_runner(pipe("x", source), datasets)
    assert message in str(caught.value)


def test_batches_stamp_the_combined_offset_and_carry_it_past_trailing_skips() -> None:
    from actors.components.source_union_datasets import MultiDatasetSource

    offsets: dict[str, int] = {}

    def read():
        for seq, emit in enumerate([True, False, True, True, False, False]):
            offsets["a"] = seq
            yield {"_id": str(seq)} if emit else None

    batches = list(MultiDatasetSource.batches(read(), offsets, 2))
    assert [[e["_id"] for e in b] for b in batches] == [["0", "2"], ["3"]]
    assert [e["_updated"] for e in batches[0]] == [{"a": 0}, {"a": 2}]
    assert batches[1][0]["_updated"] == {"a": 5}  # past the two skipped at the end
    offsets.clear()
    only_full = list(MultiDatasetSource.batches(read(), offsets, 3))
    assert len(only_full) == 1 and only_full[0][-1]["_updated"] == {"a": 5}
