"""The Runner protocol: the real PipeRunner and the test double FakeRunner both satisfy it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actors import Datasets, PipeRunner, build_runner
from actors.testing import FakeRunner, check_runner


@pytest.fixture
def datasets(tmp_path: Path) -> Any:
    opened = Datasets(tmp_path)
    yield opened
    opened.close_all()


@pytest.mark.parametrize("config", [
    {"_id": "embedded", "type": "pipe", "source": {"type": "embedded", "entities": [{"_id": "a"}]}},
    {"_id": "copy", "type": "pipe", "source": {"type": "dataset", "dataset": "embedded"}},
    {"_id": "hops", "type": "pipe", "source": {"type": "dataset", "dataset": "people"},
     "transform": {"type": "dtl", "rules": {"default": [
         ["copy", "*"], ["add", "orders", ["hops", {"datasets": ["orders o"], "where": ["eq", "_S._id", "o.person"]}]],
     ]}}},
    {"_id": "union", "type": "pipe", "source": {"type": "union_datasets", "datasets": ["a", "b"]},
     "sink": {"type": "null"}},
], ids=lambda config: config["_id"])
def test_the_real_runner_satisfies_the_protocol(datasets: Datasets, config: dict[str, Any]) -> None:
    runner = build_runner(config, datasets)
    assert isinstance(runner, PipeRunner)
    check_runner(runner)


def test_the_hop_pipe_reports_what_it_tracks(datasets: Datasets) -> None:
    runner = build_runner({"_id": "hops", "type": "pipe", "source": {"type": "dataset", "dataset": "people"},
                           "transform": {"type": "dtl", "rules": {"default": [
                               ["add", "orders", ["hops", {"datasets": ["orders o"],
                                                           "where": ["eq", "_S._id", "o.person"]}]]]}}}, datasets)
    assert runner.tracked_datasets == ["orders"] and runner.input_datasets == {"people", "orders"}
    assert len(runner.plans) == 1


@pytest.mark.parametrize("runner", [
    FakeRunner(),
    FakeRunner("q", source="json", mode="manual"),
    FakeRunner(config={"_id": "h", "type": "pipe", "source": {"type": "dataset", "dataset": "x"}, "hops": ["y"],
                       "signalling": False}),
], ids=["default", "json-source", "from-config"])
def test_the_fake_runner_satisfies_the_protocol(runner: FakeRunner) -> None:
    check_runner(runner)


def test_the_fake_runner_from_a_config_reads_like_the_real_one() -> None:
    runner = FakeRunner(config={"_id": "h", "type": "pipe", "source": {"type": "dataset", "dataset": "x"},
                                "hops": ["y"], "signalling": False})
    assert (runner.pipe_id, runner.source_datasets, runner.tracked_datasets) == ("h", ["x"], ["y"])
    assert runner.input_datasets == {"x", "y"} and runner.sink_dataset == "h" and runner.signalling is False


class Incomplete:
    """A runner double missing most of the protocol, as the ad-hoc doubles of old were."""

    pipe_id = "p"
    config: dict[str, Any] = {}

    def get_offset(self) -> Any:
        return None


def test_an_incomplete_double_fails_the_check_naming_what_it_lacks() -> None:
    with pytest.raises(AssertionError, match=r"Incomplete lacks .*input_datasets.*tracked_datasets"):
        check_runner(Incomplete())


def test_a_wrong_kind_of_value_fails_the_check() -> None:
    runner = FakeRunner()
    runner.plans = ()  # type: ignore[assignment]
    with pytest.raises(AssertionError):
        check_runner(runner)
