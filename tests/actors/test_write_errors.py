"""Write errors, entity retries and dead letters (node-spec 5.5) of a ``json`` sink pushing to a receiver
double that refuses the entities it is told to: which entities fail, what the execution log and the
dead-letter dataset then hold, what later runs send again, and when the run fails."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from actors import Datasets, PipeRunError, build_runner
from actors._write_errors import WriteErrors, WritePolicy, discard_write, pending_errors
from actors.components import ConfigError, TransientError, build_system
from actors.components.system_url import UrlSystem
from actors.testing import Answer, WebRequest, WebServer

LOG = "system:pump_execution:push"


class Receiver:
    """A JSON Push receiver that answers 422 to any request holding an entity whose ``_id`` is refused."""

    def __init__(self) -> None:
        self.refused: set[str] = set()
        self.delivered: list[str] = []  # ids of the entities it took, in order
        self.sent: list[list[str]] = []  # ids of every request's entities

    def __call__(self, request: WebRequest) -> Answer:
        ids = [e["_id"] for e in request.json()]
        self.sent.append(ids)
        bad = [i for i in ids if i in self.refused]
        if bad:
            return Answer.json({"error": f"entity {bad[0]} is not valid"}, status=422)
        self.delivered.extend(ids)
        return Answer.json({})


@pytest.fixture
def web() -> Iterator[WebServer]:
    with WebServer() as server:
        yield server


@pytest.fixture
def receiver(web: WebServer) -> Receiver:
    receiver = Receiver()
    web.route("/receive", receiver)
    return receiver


@pytest.fixture
async def system(web: WebServer) -> AsyncIterator[UrlSystem]:
    system = build_system({"_id": "target", "type": "system:url", "base_url": web.url("/")})
    assert isinstance(system, UrlSystem)
    await system.open()
    yield system
    await system.close()


def fill(datasets: Datasets, *entities: dict[str, Any]) -> None:
    datasets.open("in").write(list(entities))


def pipe(**pump: Any) -> dict[str, Any]:
    return {"_id": "push", "type": "pipe", "batch_size": 10, "source": {"type": "dataset", "dataset": "in"},
            "sink": {"type": "json", "system": "target", "url": "receive"},
            "pump": {"batch_retries": 0, **pump}}


def run(datasets: Datasets, system: UrlSystem, **pump: Any) -> Any:
    return build_runner(pipe(**pump), datasets, systems={"target": system}).run()


def body(entity: dict[str, Any]) -> dict[str, Any]:
    """An entity without its stored properties (``_updated``, ``_ts``...), ``_id`` kept."""
    return {k: v for k, v in entity.items() if k == "_id" or not k.startswith("_")}


def log_entity(datasets: Datasets, entity_id: str) -> dict[str, Any] | None:
    dataset = datasets.get(LOG)
    return None if dataset is None else dataset.get(entity_id)


ENTITIES = [{"_id": name, "n": i} for i, name in enumerate("abcde")]
TOLERANT = {"max_consecutive_write_errors": 3, "max_write_errors_in_retry_dataset": 10,
            "max_retries_per_entity": 2, "dead_letter_dataset": "dead"}


# -- the default policy: the first write error fails the run ---------------------------------------------


async def test_by_default_the_first_failing_entity_fails_the_run_and_the_next_run_sends_it_again(
        datasets: Datasets, system: UrlSystem, receiver: Receiver) -> None:
    fill(datasets, *ENTITIES)
    receiver.refused = {"c"}
    with pytest.raises(PipeRunError, match=r"writing entity 'c' failed: .*422") as failure:
        run(datasets, system)
    assert failure.value.entity is not None and body(failure.value.entity) == {"_id": "c", "n": 2}
    # the batch failed whole, then one entity at a time up to the failing one
    assert receiver.sent == [list("abcde"), ["a"], ["b"], ["c"]]
    error = log_entity(datasets, "write-error:c")
    assert error is not None
    assert (error["error_code"], error["retryable"], error["dead"], error["resolved"]) == (1, False, False, False)
    assert body(error["entity"]) == {"_id": "c", "n": 2} and "422" in error["original_error_message"]
    runner = build_runner(pipe(), datasets, systems={"target": system})
    assert runner.get_offset() is None  # nothing committed: the next run sends the batch again

    receiver.refused = set()
    result = run(datasets, system)
    assert receiver.sent[-2:] == [list("abcde"), []] and result.write_errors == 0  # [] is the full run's is_last
    resolved = log_entity(datasets, "write-error:c")
    assert resolved is not None and resolved["resolved"] is True and "resolved_entity" not in resolved
    assert pending_errors(datasets.get(LOG)) == {}


async def test_a_later_batch_failing_keeps_the_offset_of_the_batches_delivered(
        datasets: Datasets, system: UrlSystem, receiver: Receiver) -> None:
    fill(datasets, *[{"_id": f"e{i:02}"} for i in range(25)])
    receiver.refused = {"e13"}
    with pytest.raises(PipeRunError, match="e13"):
        run(datasets, system)
    assert receiver.delivered[:10] == [f"e{i:02}" for i in range(10)]
    runner = build_runner(pipe(), datasets, systems={"target": system})
    assert runner.get_offset() == 9  # the first batch's last _updated; e10-e12 (sent alone) go again
    receiver.refused = set()
    receiver.sent.clear()
    run(datasets, system)
    assert receiver.sent == [[f"e{i:02}" for i in range(10, 20)], [f"e{i:02}" for i in range(20, 25)]]


async def test_without_the_fallback_the_whole_batch_fails(datasets: Datasets, system: UrlSystem,
                                                          receiver: Receiver) -> None:
    fill(datasets, *ENTITIES)
    receiver.refused = {"c"}
    with pytest.raises(PipeRunError, match="writing entity 'a' failed"):
        run(datasets, system, fallback_to_single_entities_on_batch_fail=False)
    assert receiver.sent == [list("abcde")]


async def test_an_unreachable_system_fails_the_run_with_error_code_0_and_no_fallback(datasets: Datasets) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = build_system({"_id": "target", "type": "system:url", "base_url": f"http://127.0.0.1:{port}/",
                           "connect_timeout": 2})
    await closed.open()
    try:
        fill(datasets, *ENTITIES)
        with pytest.raises(PipeRunError, match="could not reach its system") as failure:
            run(datasets, closed, **TOLERANT)  # tolerated errors or not: a system that is down fails the run
    finally:
        await closed.close()
    assert isinstance(failure.value.__cause__, TransientError)
    error = log_entity(datasets, "write-error:a")
    assert error is not None and error["error_code"] == 0 and error["dead"] is False
    assert log_entity(datasets, "write-error:b") is None  # not sent alone: the system, not an entity, failed
    assert datasets.get("dead") is None or list(datasets.open("dead").iter_entities()) == []


# -- tolerated errors: retries on later runs, then dead letters -------------------------------------------


async def test_tolerated_errors_are_retried_on_later_runs_then_dead_lettered(
        datasets: Datasets, system: UrlSystem, receiver: Receiver) -> None:
    fill(datasets, *ENTITIES)
    receiver.refused = {"b", "d"}
    first = run(datasets, system, **TOLERANT)
    assert receiver.delivered == ["a", "c", "e"]
    assert (first.write_errors, first.dead, first.retry_entities_exist) == (2, 0, True)
    for name in "bd":
        error = log_entity(datasets, f"write-error:{name}")
        assert error is not None and (error["retryable"], error["retry_attempts"], error["dead"]) == (True, 0, False)

    receiver.sent.clear()
    second = run(datasets, system, **TOLERANT)  # nothing new: the retry pass sends b and d again, alone
    assert receiver.sent == [["b"], ["d"]] and second.retried == 2
    assert log_entity(datasets, "write-error:b")["retry_attempts"] == 1  # type: ignore[index]

    third = run(datasets, system, **TOLERANT)
    assert third.dead == 2 and third.retry_entities_exist is False
    dead_b = log_entity(datasets, "write-error:b")
    assert dead_b is not None and (dead_b["dead"], dead_b["retryable"], dead_b["retry_attempts"]) == (True, False, 2)
    letters = {e["_id"]: e for e in datasets.open("dead").iter_entities(history=False)}
    assert sorted(letters) == ["b", "d"] and body(letters["b"]["entity"]) == {"_id": "b", "n": 1}
    assert "422" in letters["b"]["original_error_message"]

    receiver.sent.clear()
    run(datasets, system, **TOLERANT)
    assert receiver.sent == []  # dead entities are not retried

    receiver.refused = set()  # a new version of b comes from the source and goes through
    fill(datasets, {"_id": "b", "n": 100})
    run(datasets, system, **TOLERANT, track_dead_letters=True)
    resolved = log_entity(datasets, "write-error:b")
    assert resolved is not None and resolved["resolved"] is True
    assert body(resolved["resolved_entity"]) == {"_id": "b", "n": 100}
    letters = {e["_id"]: e for e in datasets.open("dead").iter_entities(history=False, deleted=True)}
    assert letters["b"]["_deleted"] is True and letters["d"]["_deleted"] is False


async def test_a_retry_that_succeeds_resolves_the_error(datasets: Datasets, system: UrlSystem,
                                                        receiver: Receiver) -> None:
    fill(datasets, *ENTITIES)
    receiver.refused = {"c"}
    run(datasets, system, **TOLERANT)
    receiver.refused = set()
    result = run(datasets, system, **TOLERANT)
    assert receiver.delivered == ["a", "b", "d", "e", "c"] and result.retried == 1
    error = log_entity(datasets, "write-error:c")
    assert error is not None and error["resolved"] is True and error["retryable"] is False
    assert pending_errors(datasets.get(LOG)) == {}


async def test_with_retries_off_a_tolerated_error_is_dead_at_once(datasets: Datasets, system: UrlSystem,
                                                                  receiver: Receiver) -> None:
    fill(datasets, *ENTITIES)
    receiver.refused = {"c"}
    result = run(datasets, system, max_consecutive_write_errors=2, use_dead_letter_dataset=True)
    assert result.dead == 1 and receiver.delivered == ["a", "b", "d", "e"]
    letters = list(datasets.open("system:dead-letter:push").iter_entities(history=False))
    assert [e["_id"] for e in letters] == ["c"] and letters[0]["dead"] is True


async def test_errors_in_a_row_past_the_limit_fail_the_run(datasets: Datasets, system: UrlSystem,
                                                           receiver: Receiver) -> None:
    fill(datasets, *ENTITIES)
    receiver.refused = {"b", "c", "d"}
    with pytest.raises(PipeRunError, match=r"writing entity 'd' failed.*3 write errors in a row"):
        run(datasets, system, **TOLERANT)


async def test_more_pending_retries_than_the_cap_fail_the_run(datasets: Datasets, system: UrlSystem,
                                                              receiver: Receiver) -> None:
    fill(datasets, *ENTITIES)
    receiver.refused = {"a", "c", "e"}
    with pytest.raises(PipeRunError, match=r"more than 2 entities wait for a write retry"):
        run(datasets, system, **{**TOLERANT, "max_write_errors_in_retry_dataset": 2})


async def test_discarded_retries_are_not_sent_again_nor_dead_lettered(datasets: Datasets, system: UrlSystem,
                                                                      receiver: Receiver) -> None:
    fill(datasets, *ENTITIES)
    receiver.refused = {"c"}
    run(datasets, system, **TOLERANT)
    assert datasets.apply(discard_write(LOG)) == 1
    receiver.sent.clear()
    result = run(datasets, system, **TOLERANT)
    assert receiver.sent == [] and result.retried == 0
    error = log_entity(datasets, "write-error:c")
    assert error is not None and (error["retryable"], error["dead"], error["discarded"]) == (False, False, True)
    assert datasets.get("dead") is None or list(datasets.open("dead").iter_entities()) == []
    assert log_entity(datasets, "pump-discard-retries")["discarded"] == 1  # type: ignore[index]


async def test_the_dead_letter_dataset_is_asserted_when_the_pipe_loads(datasets: Datasets,
                                                                       system: UrlSystem) -> None:
    runner = build_runner(pipe(use_dead_letter_dataset=True), datasets, systems={"target": system})
    [write] = runner.load_writes()
    datasets.apply(write)
    assert datasets.open("system:dead-letter:push").populated


# -- the policy and its bookkeeping -------------------------------------------------------------------------


@pytest.mark.parametrize(("pump", "where", "message"), [
    ({"max_consecutive_write_errors": 0}, "pump.max_consecutive_write_errors", "integer >= 1"),
    ({"max_retries_per_entity": -1}, "pump.max_retries_per_entity", "integer >= 0"),
    ({"max_write_errors_in_retry_dataset": "3"}, "pump.max_write_errors_in_retry_dataset", "integer >= 0"),
    ({"track_dead_letters": "yes"}, "pump.track_dead_letters", "true or false"),
    ({"dead_letter_dataset": "a/b"}, "pump.dead_letter_dataset", "dataset id"),
])
def test_malformed_settings_are_config_errors(pump: dict[str, Any], where: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        WritePolicy.of("p", pump)
    assert error.value.where == f"pipe p: {where}"


def test_the_policy_defaults_and_the_deprecated_dead_letter_flag() -> None:
    assert WritePolicy.of("p", {}) == WritePolicy(1, 0, 5, True, None, False)
    assert WritePolicy.of("p", {"use_dead_letter_dataset": True}).dead_letter_dataset == "system:dead-letter:p"
    assert WritePolicy.of("p", {"use_dead_letter_dataset": True, "dead_letter_dataset": "mine"}
                          ).dead_letter_dataset == "mine"


def test_errors_owe_their_log_writes_before_anything_else() -> None:
    errors = WriteErrors(WritePolicy.of("p", TOLERANT), LOG, {})
    errors.failed_entity({"_id": "x"}, ValueError("no"), retry=False)
    errors.delivered([{"_id": "y"}])
    errors.failed_entity({"_id": "z"}, ValueError("no"), retry=False)
    assert errors.consecutive == 1  # the delivery in between ended the run of failures
    [write] = errors.take_writes()
    assert write.dataset == LOG and errors.take_writes() == []
