"""Automatic reprocessing (node-spec 4.8): the out-of-sync reasons and the policy settings."""

from __future__ import annotations

from typing import Any

import pytest

from actors import ConfigError, Datasets, build_runner
from actors._reprocessing import out_of_sync, policy, sync_record


def record(config: dict[str, Any], **inputs: str | None) -> dict[str, Any]:
    return sync_record(config, inputs)


PIPE = {"_id": "p", "type": "pipe", "source": {"type": "dataset", "dataset": "a"}}


def reasons(before: dict[str, Any] | None, now: dict[str, Any], *, config_changes: bool = False,
            truncated: str | None = None) -> list[str]:
    return [r["reason"] for r in out_of_sync(before, now, config_changes=config_changes, truncated=truncated)]


def test_in_sync_without_a_record_or_without_changes() -> None:
    now = record(PIPE, a="g1", b="g2")
    assert reasons(None, now) == [] and reasons(now, now) == []
    later = record({**PIPE, "pump": {"schedule_interval": 5}, "description": "x"}, a="g1", b="g2")
    assert reasons(now, later, config_changes=True) == []  # the pump settings do not shape the output


def test_each_factor_is_a_reason_naming_its_dataset() -> None:
    before = record(PIPE, a="g1", b="g2")
    now = record({**PIPE, "batch_size": 7}, a="g9", c="g3")
    found = out_of_sync(before, now, config_changes=True, truncated="a")
    assert [(r["dataset"], r["reason"]) for r in found] == [
        ("a", "the source dataset 'a' ends before the pipe's offset"),
        ("a", "the dataset 'a' was deleted and created again"),
        ("c", "the pipe reads a new dataset 'c'"),
        (None, "the pipe's config changed"),
    ]
    assert reasons(before, record(PIPE, a="g1", b=None)) == ["the dataset 'b' was deleted"]
    assert reasons(before, now, config_changes=False) == ["the dataset 'a' was deleted and created again",
                                                          "the pipe reads a new dataset 'c'"]
    assert reasons(record(PIPE, a=None), record(PIPE, a="g1")) == []  # created since: nothing was read before


def test_policy_settings_come_from_the_pipe_or_the_global_defaults() -> None:
    assert policy({}, {}, "p") == ("continue", False)
    metadata = {"global_defaults": {"reprocessing_policy": "automatic", "rescan_when_config_changes": True}}
    assert policy({}, metadata, "p") == ("automatic", True)
    assert policy({"reprocessing_policy": "continue"}, metadata, "p") == ("continue", True)
    with pytest.raises(ConfigError) as caught:
        policy({"reprocessing_policy": "sometimes"}, {}, "p")
    assert caught.value.where == "pipe p: reprocessing_policy"
    with pytest.raises(ConfigError) as caught:
        policy({"rescan_when_config_changes": "yes"}, {}, "p")
    assert caught.value.where == "pipe p: rescan_when_config_changes"


def test_the_runner_records_its_inputs_and_sees_a_truncated_source(datasets: Datasets) -> None:
    build_runner({"_id": "a", "type": "pipe", "source": {"type": "embedded", "entities": [
        {"_id": str(i)} for i in range(5)]}}, datasets).run()
    runner = build_runner(PIPE, datasets)
    runner.run()
    now = runner.sync_record()
    assert now["inputs"] == {"a": datasets.open("a").generation}
    assert runner.out_of_sync(now, now) == []
    runner.set_offset(10)  # beyond the end of the source
    found = runner.out_of_sync(now, now)
    assert [r["reason"] for r in found] == ["the source dataset 'a' ends before the pipe's offset"]


def test_a_missing_input_marks_the_pipe_but_only_its_return_resets_it() -> None:
    from actors._reprocessing import resets

    before = record(PIPE, a="g1")
    gone = out_of_sync(before, record(PIPE, a=None), config_changes=False)
    assert [r["kind"] for r in gone] == ["deleted"] and resets(gone) is False
    back = out_of_sync(before, record(PIPE, a="g2"), config_changes=False)
    assert [r["kind"] for r in back] == ["recreated"] and resets(back) is True
    assert resets([]) is False


def test_a_missing_source_is_not_called_truncated(datasets: Datasets) -> None:
    runner = build_runner(PIPE, datasets)
    runner.set_offset(10)
    now = runner.sync_record()
    assert now["inputs"] == {"a": None}
    assert runner.out_of_sync(now, now) == []  # no dataset 'a': nothing ends before the offset


def test_a_missing_input_keeps_its_last_generation_in_the_record() -> None:
    from actors._reprocessing import kept_record

    before = record(PIPE, a="g1", b="g2")
    kept = kept_record(before, record(PIPE, a=None, b="g3"))
    assert kept["inputs"] == {"a": "g1", "b": "g3"}
    assert [r["kind"] for r in out_of_sync(kept, record(PIPE, a="g9", b="g3"), config_changes=False)] == \
           ["recreated"]
    assert kept_record(None, record(PIPE, a=None))["inputs"] == {"a": None}
