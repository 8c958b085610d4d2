"""run-all-pipes and its family on a real node through the API (client-spec 6.6, 9.1, 10)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from sesamd._node import open_node
from sesamd.api import create_app
from sesamd.testing import TokenClient

METADATA = {"_id": "node", "type": "metadata", "task_manager": {"disable_user_pipes": True}}


def embedded(pipe_id: str, entities: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"_id": pipe_id, "type": "pipe", "source": {"type": "embedded", "entities": entities}, **extra}


def dtl(pipe_id: str, source: str, rules: list[Any], **extra: Any) -> dict[str, Any]:
    return {"_id": pipe_id, "type": "pipe", "source": {"type": "dataset", "dataset": source},
            "transform": {"type": "dtl", "rules": {"default": [["copy", "*"], *rules]}}, **extra}


PEOPLE = [{"_id": str(i), "name": f"n{i}", "team": i % 2} for i in range(6)]
TEAMS = [{"_id": "0", "title": "even"}, {"_id": "1", "title": "odd"}]
CONFIG = [
    METADATA,
    embedded("people", PEOPLE),
    embedded("teams", TEAMS),
    {"_id": "pushed", "type": "pipe", "source": {"type": "http_endpoint"}},
    dtl("member", "people", [["add", "team_title", ["hops", {
        "datasets": ["teams t"], "where": [["eq", ["string", "_S.team"], "t._id"]], "return": "t.title"}]]]),
    dtl("loud", "member", [["add", "shout", ["upper", "_S.name"]]]),
    {"_id": "report", "type": "pipe", "source": {"type": "dataset", "dataset": "loud"},
     "sink": {"type": "csv_endpoint", "columns": ["_id", "shout"]}},
]


class Api:
    def __init__(self, node: Any) -> None:
        self.node = node
        self.app = create_app(node)
        self.http = TokenClient(self.app)

    async def call(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = await self.http.open("/api" + path, method=method, **kwargs)
        body = await response.get_data()
        assert response.status_code == status, (method, path, body)
        assert response.content_type == "application/json"
        return json.loads(body)

    async def put_config(self, config: Any, status: int = 200) -> Any:
        return await self.call("PUT", "/config", status, data=json.dumps(config),
                               headers={"Content-Type": "application/json"})

    async def run_all(self, status: int = 200, **params: Any) -> Any:
        return await self.call("POST", "/pipes/run-all-pipes", status, query_string=params)

    async def entities(self, dataset: str) -> list[dict[str, Any]]:
        return list(await self.call("GET", f"/datasets/{dataset}/entities",
                                    query_string={"history": "false", "deleted": "false"}))

    async def log(self, **params: Any) -> list[dict[str, str]]:
        return list(await self.call("GET", "/pipes/get-run-all-pipes-log", query_string=params))


@pytest.fixture
async def api(tmp_path: Any) -> AsyncIterator[Api]:
    async with open_node(tmp_path) as node:
        yield Api(node)


async def test_a_sync_run_runs_the_pipes_to_stability_and_logs_its_passes(api: Api) -> None:
    await api.put_config(CONFIG)
    answer = await api.run_all(extra_zero_runs="2", max_runs="100", max_run_time="900", request_mode="sync")
    assert answer["status"] == "success" and answer["passes"] == 4 and "additional_info" not in answer
    loud = {e["_id"]: e for e in await api.entities("loud")}
    assert loud["3"]["shout"] == "N3" and loud["3"]["team_title"] == ["odd"]
    logdata = [line["logdata"] for line in await api.log()]
    assert "Running pass #1" in logdata and "Running pass #4" in logdata
    assert "A total of 20 entities changed in pass #1" in logdata  # 6 people, 2 teams, 6 members, 6 louds
    assert "A total of 0 entities changed in pass #2" in logdata and logdata[-1] == "Finished after 4 passes"
    assert (await api.call("GET", "/pipes/report/pump"))["runtime"]["last-run"] is None  # endpoints never run
    assert (await api.call("GET", "/pipes/pushed/pump"))["runtime"]["last-run"] is None
    status = await api.call("GET", "/pipes/get-pipe-runner-status", query_string={"token": answer["token"]})
    assert status["status"] == "success"


async def test_statistics_and_a_reset_run_that_keeps_or_deletes_input_datasets(api: Api) -> None:
    await api.put_config(CONFIG)
    await api.call("POST", "/receivers/pushed/entities", json=[{"_id": "x"}])
    stats = await api.run_all(delete_input_datasets="False", output_run_statistics="True")
    info = stats["additional_info"]
    assert info["changes_per_pass"] == [20, 0, 0, 0]
    assert info["pipes"]["member"]["runs"] == 1 and info["pipes"]["member"]["skipped"] == 3
    assert set(info["pipes"]) == {"people", "teams", "member", "loud"}
    assert [e["_id"] for e in await api.entities("pushed")] == ["x"]  # a pushed input's dataset stays
    again = await api.run_all(delete_input_datasets="False", output_run_statistics="True")
    assert again["additional_info"]["changes_per_pass"] == [12, 0, 0, 0]  # the kept inputs changed nothing
    unreset = await api.run_all(reset_pipes_and_delete_sink_datasets="False", output_run_statistics="True")
    assert unreset["additional_info"]["changes_per_pass"] == [0, 0, 0]
    await api.run_all()
    await api.call("GET", "/datasets/pushed", 404)  # delete_input_datasets defaults to true


async def test_an_async_run_answers_a_token_at_once_and_can_be_polled(api: Api) -> None:
    await api.put_config(CONFIG)
    started = await api.run_all(request_mode="async")
    token = started["token"]
    with trio.fail_after(20):
        while (status := await api.call("GET", "/pipes/get-pipe-runner-status",
                                        query_string={"token": token}))["status"] == "running":
            await trio.sleep(0.01)
    assert status["status"] == "success"
    lines = await api.log(token=token)
    assert all(set(line) == {"timestamp", "loglevel", "logdata"} for line in lines)
    later = await api.log(token=token, since=lines[2]["timestamp"])
    assert later == lines[3:]
    assert await api.log(token="unknown") == []
    assert (await api.call("GET", "/pipes/get-pipe-runner-status", query_string={"token": "unknown"}))[
        "status"] == "not-running"


async def test_bad_parameters_are_400s_naming_them(api: Api) -> None:
    for name, value in (("max_runs", "lots"), ("check_input_pipes", "perhaps"), ("request_mode", "later"),
                        ("max_run_time", "-1")):
        refused = await api.run_all(400, **{name: value})
        assert refused["parameter"] == name and name in refused["detail"] and value in refused["detail"]
    refused = await api.call("GET", "/pipes/get-run-all-pipes-log", 400, query_string={"since": "yesterday"})
    assert "'since'" in refused["detail"]
    refused = await api.call("POST", "/pipes/stop-run-all-pipes", 400, query_string={"terminate_timeout": "x"})
    assert "'terminate_timeout'" in refused["detail"]


async def test_outside_developer_mode_the_test_workflow_is_refused(api: Api) -> None:
    await api.put_config([{**METADATA, "developer_mode": False}, embedded("a", [])])
    for path in ("/pipes/run-all-pipes", "/pipes/delete-all-sink-datasets"):
        refused = await api.call("POST", path, 403)
        assert "developer mode" in refused["detail"]


async def test_a_failing_pipe_fails_the_run_an_input_pipe_only_when_checked(api: Api) -> None:
    broken_input = {**embedded("broken", [{"_id": "1"}]),
                    "transform": {"type": "dtl", "rules": {"default": [["fail!", "no input today"]]}}}
    await api.put_config([METADATA, broken_input, embedded("fine", [{"_id": "1"}])])
    assert (await api.run_all())["status"] == "success"
    assert any("no input today" in line["logdata"] and line["loglevel"] == "WARNING" for line in await api.log())
    failed = await api.run_all(check_input_pipes="True")
    assert failed["status"] == "failed" and "'broken'" in failed["reason"]
    await api.put_config([METADATA, embedded("fine", [{"_id": "1"}]),
                          dtl("bad", "fine", [["fail!", "always"]])])
    failed = await api.run_all()
    assert failed["status"] == "failed" and failed["passes"] == 1
    assert any("always" in line["logdata"] for line in await api.log())


async def test_a_config_that_never_settles_fails_at_max_runs(api: Api) -> None:
    counter = [METADATA, embedded("seed", [{"_id": "c", "n": 0}], sink={"type": "dataset", "dataset": "counter"}),
               dtl("bump", "counter", [["add", "n", ["plus", 1, "_S.n"]]], sink={"type": "dataset",
                                                                                 "dataset": "counter"})]
    await api.put_config(counter)
    failed = await api.run_all(max_runs="4")
    assert failed["status"] == "failed" and failed["passes"] == 4 and "max_runs=4" in failed["reason"]


async def test_stop_ends_a_run_as_failed_and_only_one_runs_at_a_time(api: Api) -> None:
    slow = [METADATA, embedded("seed", [{"_id": "1"}, {"_id": "2"}]),  # each slow pipe runs for 2 seconds
            *(dtl(f"slow{i}", f"slow{i - 1}" if i else "seed", [["sleep!", 1]]) for i in range(5)),
            embedded("timed", [], pump={"schedule_interval": 3600})]
    await api.put_config(slow)
    await api.put_config([{**METADATA, "task_manager": {}}, *slow[1:]])  # the pumps schedule themselves again
    assert (await api.call("GET", "/pipes/timed/pump"))["runtime"]["next-run"] is not None
    token = (await api.run_all(request_mode="async"))["token"]
    with trio.fail_after(10):
        while not api.node.pipes["slow0"].actor.running:  # type: ignore[union-attr]
            await trio.sleep(0.005)
    assert (await api.call("GET", "/pipes/timed/pump"))["runtime"]["next-run"] is None  # held while it runs
    busy = await api.run_all(409)
    assert busy["token"] == token
    await api.call("POST", "/pipes/run-pipes", 409, json=["seed"])
    stopped = await api.call("POST", "/pipes/stop-run-all-pipes", query_string={"terminate_timeout": "30"})
    assert stopped["status"] == "stopped" and stopped["token"] == token
    assert api.node.pipes["slow1"].actor.status.last_run is None  # type: ignore[union-attr]  # none started after the stop
    status = await api.call("GET", "/pipes/get-pipe-runner-status", query_string={"token": token})
    assert status["status"] == "failed" and "stopped" in status["reason"]
    assert any(line["logdata"] == "Stopping: stopped by stop-run-all-pipes" for line in await api.log(token=token))
    assert (await api.call("GET", "/pipes/timed/pump"))["runtime"]["next-run"] is not None  # released
    assert (await api.call("POST", "/pipes/stop-run-all-pipes")) == {"status": "not-running"}


async def test_run_pipes_runs_the_listed_pipes_and_names_unknown_ones(api: Api) -> None:
    await api.put_config(CONFIG)
    answer = await api.call("POST", "/pipes/run-pipes", json=["people", "teams", "member"],
                            query_string={"timeout": "20"})
    assert answer["member"] == {"result": "completed", "status": {"changes_last_run": 6, "processed_last_run": 6,
                                                                   "last-message": "Completed"}}
    assert answer["people"]["status"]["changes_last_run"] == 6
    again = await api.call("POST", "/pipes/run-pipes", json=["member"])
    assert again["member"]["status"]["changes_last_run"] == 0
    missing = await api.call("POST", "/pipes/run-pipes", 404, json=["people", "ghost"])
    assert missing["pipes"] == ["ghost"] and "'ghost'" in missing["detail"]
    await api.call("POST", "/pipes/run-pipes", 400, json={"pipes": ["people"]})


async def test_delete_all_sink_datasets_deletes_the_user_pipes_datasets(api: Api) -> None:
    await api.put_config(CONFIG)
    await api.run_all()
    deleted = await api.call("POST", "/pipes/delete-all-sink-datasets")
    assert deleted["deleted"] == ["loud", "member", "people", "teams"]
    await api.call("GET", "/datasets/loud", 404)


async def test_the_fixed_paths_are_routed_before_the_pipe_id(api: Api) -> None:
    adapter = api.app.url_map.bind("localhost")
    assert adapter.match("/api/pipes/run-all-pipes", method="POST")[0] == "run_all.run_all_pipes"
    assert adapter.match("/api/pipes/get-pipe-runner-status", method="GET")[0] == "run_all.get_pipe_runner_status"
    assert adapter.match("/api/pipes/get-run-all-pipes-log", method="GET")[0] == "run_all.get_run_all_pipes_log"
    assert adapter.match("/api/pipes/some-pipe", method="GET")[0] == "pipes.get_pipe"
    await api.put_config(CONFIG)
    assert (await api.run_all())["status"] == "success"  # not "no pipe 'run-all-pipes'"


async def test_three_hundred_generated_pipes_run_to_stability(api: Api) -> None:
    """Correctness at the size of a real project (its speed is measured by scripts/bench/client.py)."""
    inputs = [embedded(f"in{i}", [{"_id": str(k), "v": k, "g": k % 3} for k in range(10)]) for i in range(30)]
    chain = [dtl(f"p{j}", f"in{j}" if j < 30 else f"p{j - 30}", [
        ["add", "n", ["plus", 1, "_S.v"]],
        ["add", "o", ["hops", {"datasets": [f"in{(j + 1) % 30} o"], "where": [["eq", "_S.g", "o.g"]],
                               "return": "o._id"}]]]) for j in range(270)]
    await api.put_config([METADATA, *inputs, *chain])
    answer = await api.run_all(output_run_statistics="True")
    assert answer["status"] == "success"
    assert answer["additional_info"]["changes_per_pass"] == [3000, 0, 0, 0]
    assert len(answer["additional_info"]["pipes"]) == 300
