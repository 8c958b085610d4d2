"""The ``http`` transform (node-spec 7.3) against a local web server double, and the ``system:microservice``
system (10.4): a URL system for a running service, with the json source, the json sink and the transform."""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from actors import Datasets, build_runner
from actors.components import BuildContext, ConfigError, TerminalError, TransientError, build_system, lookup
from actors.components.system_microservice import MicroserviceSystem
from actors.components.system_url import UrlSystem
from actors.components.transform_http import HttpTransform
from actors.testing import Answer, WebRequest, WebServer

ENTITIES = [
    {"_id": "a", "n": 1, "price": "~f1.50", "when": "~t2024-01-02T03:04:05Z"},
    {"_id": "b", "n": 2, "tags": ["x", "~~tilde"]},
    {"_id": "c", "_deleted": True},
]


def seen(request: WebRequest) -> Answer:
    """A microservice that adds ``seen: true`` to every entity it gets, in order."""
    return Answer.json([{**entity, "seen": True} for entity in request.json()])


@pytest.fixture
def web() -> Iterator[WebServer]:
    with WebServer() as server:
        yield server


def make_system(url: str, kind: str = "system:url", **config: Any) -> UrlSystem:
    system = build_system({"_id": "svc", "type": kind, "base_url": url, **config})
    assert isinstance(system, UrlSystem)
    return system


@pytest.fixture
async def svc(web: WebServer) -> AsyncIterator[UrlSystem]:
    system = make_system(web.url("/"))
    await system.open()
    yield system
    await system.close()


def build(kind: str, config: dict[str, Any], *systems: Any, pump: dict[str, Any] | None = None,
          where: str = "transform[0]") -> Any:
    """A component built through the registry, as the engine builds it."""
    pipe = {"_id": "p1", **({"pump": pump} if pump is not None else {})}
    context = BuildContext(pipe_id="p1", pipe=pipe, datasets=None,  # type: ignore[arg-type]
                           where=where, systems={s.id: s for s in systems})
    return lookup(kind, config, f"pipe p1: {where}").factory(config, context)


def http(system: Any, pump: dict[str, Any] | None = None, **config: Any) -> HttpTransform:
    transform = build("transform", {"type": "http", "system": "svc", "url": "transform", **config}, system,
                      pump=pump)
    assert isinstance(transform, HttpTransform)
    return transform


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the protocol ----------------------------------------------------------------------------------------


async def test_a_microservice_adds_a_property_keeping_order_and_ids(web: WebServer, svc: UrlSystem) -> None:
    web.route("/transform", seen)
    out = http(svc).transform([dict(e) for e in ENTITIES])
    assert out == [{**e, "seen": True} for e in ENTITIES]  # wire form in, wire form out; deletes are sent too
    [request] = web.requests
    assert (request.method, request.path) == ("POST", "/transform")
    assert request.headers["content-type"] == "application/json"
    assert request.json() == ENTITIES  # transit-encoded strings on the wire, as the json sink sends them


async def test_the_answer_replaces_the_batch_in_the_services_order(web: WebServer, svc: UrlSystem) -> None:
    web.route("/transform", lambda request: Answer.json(
        [{"_id": "b", "x": 2.5}, {"_id": "b-child"}, {"_id": "a", "big": 12345678901234567890123}]))
    out = http(svc).transform([dict(e) for e in ENTITIES])
    assert out == [{"_id": "b", "x": "~f2.5"}, {"_id": "b-child"}, {"_id": "a", "big": 12345678901234567890123}]
    web.route("/transform", Answer.json([]))
    assert http(svc).transform([dict(e) for e in ENTITIES]) == []  # filtering everything is allowed


@pytest.mark.parametrize(("count", "config", "sizes"), [
    (250, {"batch_size": 100}, [100, 100, 50]),
    (150, {}, [100, 50]),  # batch_size defaults to 100
    (3, {"batch_size": 1}, [1, 1, 1]),
    (0, {}, []),  # an empty batch makes no request
])
async def test_batch_size_sets_the_entities_per_request(web: WebServer, svc: UrlSystem, count: int,
                                                        config: dict[str, Any], sizes: list[int]) -> None:
    web.route("/transform", seen)
    batch = [{"_id": str(i)} for i in range(count)]
    out = http(svc, **config).transform(batch)
    assert [len(r.json()) for r in web.requests] == sizes
    assert [e["_id"] for e in out] == [str(i) for i in range(count)] and all(e["seen"] for e in out)


async def test_headers_and_auth_come_from_the_system_and_the_transform(web: WebServer) -> None:
    system = make_system(web.url("/api/"), headers={"X-Api-Key": "k1", "X-Both": "system"},
                         authentication="basic", username="ann", password="pw")
    await system.open()
    try:
        web.route("/api/transform", seen)
        http(system, headers={"X-Both": "transform", "X-Extra": "1"}).transform([{"_id": "a"}])
        absolute = web.url("/elsewhere")
        web.route("/elsewhere", seen)
        http(system, url=absolute, headers={"Content-Type": "application/vnd.x+json"}).transform([{"_id": "a"}])
    finally:
        await system.close()
    first, second = web.requests
    assert first.path == "/api/transform"
    assert first.headers["x-api-key"] == "k1" and first.headers["x-extra"] == "1"
    assert first.headers["x-both"] == "transform"  # the transform's headers win over the system's
    assert first.headers["authorization"] == "Basic " + base64.b64encode(b"ann:pw").decode()
    assert second.path == "/elsewhere" and second.headers["content-type"] == "application/vnd.x+json"
    assert second.headers["authorization"].startswith("Basic ")


async def test_bound_is_accepted_and_ignored(web: WebServer, svc: UrlSystem) -> None:
    web.route("/transform", seen)
    assert http(svc).transform([{"_id": "a"}], bound={"since": "3"}) == [{"_id": "a", "seen": True}]
    assert web.requests[0].query == {}


async def test_trigger_on_sends_only_matching_entities(web: WebServer, svc: UrlSystem) -> None:
    web.route("/transform", lambda request: Answer.json(
        [x for e in request.json() for x in ({**e, "seen": True}, {"_id": e["_id"] + "-2"})]))
    batch = [{"_id": "1", "_trigger": "yes"}, {"_id": "2", "_trigger": "no"}, {"_id": "3"},
             {"_id": "4", "_trigger": "yes-too"}, {"_id": "5", "_trigger": "yes"}, {"_id": "6", "_trigger": 1}]
    out = http(svc, batch_size=2, trigger_on={"value": "yes*"}).transform(batch)
    assert [[e["_id"] for e in r.json()] for r in web.requests] == [["1", "4"], ["5"]]
    assert [e["_id"] for e in out] == ["1", "1-2", "4", "4-2", "2", "3", "5", "5-2", "6"]  # answers in place
    web.requests.clear()
    nested = [{"_id": "1", "meta": {"kind": "~~x"}}, {"_id": "2", "meta": {"kind": "y"}}]
    out = http(svc, trigger_on={"key": "meta.kind", "value": "~x"}).transform(nested)
    assert [e["_id"] for e in web.requests[0].json()] == ["1"]
    assert out == [{"_id": "1", "meta": {"kind": "~~x"}, "seen": True}, {"_id": "1-2"}, nested[1]]
    web.requests.clear()
    assert http(svc, trigger_on={"value": "z"}).transform(nested) == nested and web.requests == []


# -- failures ------------------------------------------------------------------------------------------


async def test_a_503_is_retried_then_succeeds(web: WebServer, svc: UrlSystem) -> None:
    web.route("/transform", Answer(503), seen)
    assert http(svc).transform([{"_id": "a"}]) == [{"_id": "a", "seen": True}]
    assert len(web.requests) == 2 and web.requests[0].body == web.requests[1].body


async def test_a_429_waits_out_retry_after(web: WebServer, svc: UrlSystem) -> None:
    web.route("/transform", Answer(429, headers={"Retry-After": "7"}), seen)
    transform = http(svc, pump={"write_retry_delay": 2})
    waits: list[float] = []
    transform.sleep = waits.append
    assert transform.transform([{"_id": "a"}]) == [{"_id": "a", "seen": True}]
    assert waits == [7.0] and len(web.requests) == 2


async def test_pump_batch_retries_limit_the_retries(web: WebServer, svc: UrlSystem) -> None:
    web.route("/transform", Answer(503, b"busy"))
    transform = http(svc, pump={"batch_retries": 1, "write_retry_delay": "~f0.5"})
    waits: list[float] = []
    transform.sleep = waits.append
    with pytest.raises(TransientError) as caught:
        transform.transform([{"_id": "a"}])
    assert caught.value.status == 503 and waits == [0.5] and len(web.requests) == 2
    assert caught.value.message == f"POST {web.url('/transform')} answered 503 Service Unavailable: busy " \
                                   "(after 1 retry)"


async def test_retries_exhausted_fail_transiently(web: WebServer, svc: UrlSystem) -> None:
    web.route("/transform", Answer(502))
    with pytest.raises(TransientError, match=r"answered 502 Bad Gateway \(after 3 retries\)$"):
        http(svc).transform([{"_id": "a"}])
    assert len(web.requests) == 4  # batch_retries defaults to 3, as for the json sink


async def test_a_400_is_terminal_at_once(web: WebServer, svc: UrlSystem) -> None:
    web.route("/transform", Answer(400, b'{"error": "no _id in entity 3"}'))
    with pytest.raises(TerminalError) as caught:
        http(svc).transform([{"_id": "a"}])
    assert caught.value.status == 400 and len(web.requests) == 1
    assert caught.value.message == f'POST {web.url("/transform")} answered 400 Bad Request: ' \
                                   '{"error": "no _id in entity 3"}'


async def test_a_refused_connection_is_transient() -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    system = make_system(url)
    await system.open()
    try:
        transform = http(system)
        transform.sleep = lambda seconds: None
        with pytest.raises(TransientError) as caught:
            transform.transform([{"_id": "a"}])
    finally:
        await system.close()
    assert caught.value.message.startswith(f"POST {url}transform: the connection failed (ConnectError")
    assert caught.value.message.endswith("(after 3 retries)")


async def test_a_closed_system_is_transient(web: WebServer) -> None:
    with pytest.raises(TransientError, match="system 'svc' is not open"):
        http(make_system(web.url("/"))).transform([{"_id": "a"}])


@pytest.mark.parametrize(("answer", "text"), [
    (Answer.json({"_id": "a"}), "the answer is not a JSON array (it starts with '{')"),
    (Answer(body=b'{"_id": "a"}\n{"_id": "b"}\n'), "the answer is not a JSON array (it starts with '{')"),
    (Answer(body=b"<html>oops</html>", content_type="text/html"),
     "the answer is not a JSON array (it starts with '<')"),
    (Answer(body=b"  \n"), "the answer is empty, not a JSON array"),
    (Answer(body=b""), "the answer is empty, not a JSON array"),
    (Answer.json([{"_id": "a"}, 1]), "item 1 of the answer is not a JSON object"),
    (Answer.json([{"_id": "a"}, {"name": "b"}]), "item 1 of the answer has no string '_id'"),
    (Answer.json([{"_id": 7}]), "item 0 of the answer has no string '_id'"),
    (Answer(body=b'[{"_id": "a"}, {"_id": '), "the answer is not a JSON array or NDJSON"),
])
async def test_an_answer_that_is_not_an_array_of_entities_is_terminal(web: WebServer, svc: UrlSystem,
                                                                       answer: Answer, text: str) -> None:
    web.route("/transform", answer)
    with pytest.raises(TerminalError) as caught:
        http(svc).transform([{"_id": "a"}])
    assert caught.value.message.startswith(f"POST {web.url('/transform')}: {text}")
    assert len(web.requests) == 1


async def test_an_answer_cut_off_is_transient(web: WebServer, svc: UrlSystem) -> None:
    body = b'[{"_id": "a"}, {"_id": "b"}]'
    web.route("/transform", Answer(body=body, hang_up_after=10))
    with pytest.raises(TransientError, match="the body was cut off"):
        http(svc).transform([{"_id": "a"}])


# -- config --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("config", "where"), [
    ({"system": "svc"}, "pipe p1: transform[0]"),
    ({"url": "x"}, "pipe p1: transform[0]"),
    ({"system": "svc", "url": "x", "batch_size": 0}, "pipe p1: transform[0].batch_size"),
    ({"system": "svc", "url": "x", "headers": {"X-A": 1}}, "pipe p1: transform[0].headers.X-A"),
    ({"system": "svc", "url": "x", "trigger_on": {"key": "k"}}, "pipe p1: transform[0].trigger_on"),
    ({"system": "svc", "url": "x", "side_effects": "no"}, "pipe p1: transform[0].side_effects"),
])
def test_config_errors_name_the_path(config: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        lookup("transform", {"type": "http", **config}, "pipe p1: transform[0]")
    assert caught.value.where == where


def test_a_system_of_another_kind_is_a_config_error() -> None:
    sqlite = build_system({"_id": "svc", "type": "system:sqlite", "database": ":memory:"})
    with pytest.raises(ConfigError) as caught:
        http(sqlite)
    assert caught.value.where == "pipe p1: transform[0].system"
    assert "a http transform needs a system:url or system:microservice" in caught.value.detail


def test_a_missing_system_fails_when_used() -> None:
    transform = build("transform", {"type": "http", "system": "gone", "url": "x"})
    with pytest.raises(TerminalError, match="system 'gone' is not in the config"):
        transform.transform([{"_id": "a"}])


def test_side_effects_default_to_true() -> None:
    system = make_system("http://h/")
    assert http(system).side_effects is True
    assert http(system, side_effects=False).side_effects is False


# -- system:microservice ---------------------------------------------------------------------------------


async def test_a_microservice_system_works_with_the_json_source_transform_and_sink(web: WebServer) -> None:
    system = make_system(web.url("/"), "system:microservice")
    assert isinstance(system, MicroserviceSystem) and system.status()["unsupported"] == []
    web.route("/entities", Answer.json([{"_id": "a", "x": 0.5}, {"_id": "b"}]))
    web.route("/transform", seen)
    web.route("/receiver", Answer.json({}))
    await system.open()
    try:
        source = build("source", {"type": "json", "system": "svc", "url": "entities"}, system, where="source")
        [batch] = list(source.read(None, 10))
        out = http(system).transform(batch)
        sink = build("sink", {"type": "json", "system": "svc", "url": "receiver"}, system, where="sink")
        sink.begin_run()
        sink.write(out, state={}, full_run=None)
    finally:
        await system.close()
    assert out == [{"_id": "a", "x": "~f0.5", "seen": True}, {"_id": "b", "seen": True}]
    assert [r.path for r in web.requests] == ["/entities", "/transform", "/receiver"]
    assert web.of("/receiver")[0].json() == out


@pytest.mark.parametrize(("config", "url"), [
    ({"base_url": "http://ms:5000/api/"}, "http://ms:5000/api/transform"),
    ({"base_url": "http://ms:5000/api"}, "http://ms:5000/transform"),  # urljoin, as for system:url
    ({"url_pattern": "http://ms:5000/v1/%s"}, "http://ms:5000/v1/transform"),
])
def test_microservice_url_rules(config: dict[str, Any], url: str) -> None:
    system = build_system({"_id": "svc", "type": "microservice", **config})  # the short type works too
    assert system.config["type"] == "system:microservice" and isinstance(system, MicroserviceSystem)
    assert system.url("transform") == url


@pytest.mark.parametrize(("extra", "example"), [
    ({}, "http://my-service:5000/"),
    ({"use_https": True}, "https://my-service:5000/"),
])
def test_a_docker_only_microservice_says_sesamd_starts_no_containers(extra: dict[str, Any], example: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_system({"_id": "my-service", "type": "system:microservice",
                      "docker": {"image": "acme/enricher:1.2", "port": 5000, "environment": {"KEY": "v"}}, **extra})
    assert caught.value.where == "$"
    assert caught.value.detail == ("sesamd starts no containers, so it does not run the docker image "
                                   f"'acme/enricher:1.2': set 'base_url' to the URL of the already running "
                                   f"service (e.g. '{example}')")


def test_a_microservice_without_a_url_needs_base_url() -> None:
    with pytest.raises(ConfigError) as caught:
        build_system({"_id": "svc", "type": "system:microservice"})
    assert caught.value.where == "$"
    assert caught.value.detail == ("'base_url' is required: the URL of the running microservice (sesamd starts no "
                                   "containers)")


def test_a_microservice_with_docker_and_base_url_loads_and_runs_no_container() -> None:
    system = build_system({
        "_id": "svc", "type": "system:microservice", "base_url": "http://svc:5000/",
        "docker": {"image": "acme/enricher", "port": 5000, "environment": {"A": "1", "B": {"c": 2}},
                   "memory": 256, "cpu_quota": 50, "hosts": {"db": "10.0.0.2"}, "skip_pull": True,
                   "pull_image_cron_expression": None},
        "use_https": False, "eager_load": False, "verify_ssl": True, "authentication": "digest",
        "username": "u", "password": "p", "connect_timeout": 5, "read_timeout": 60,
        "retry_strategy": {"503": {"batch_retries": 5}}})
    assert system.status()["unsupported"] == ["docker"]
    assert system.timeout.connect == 5  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["system:url", "system:microservice"])
def test_unknown_properties_are_accepted_as_for_other_systems(kind: str) -> None:
    system = build_system({"_id": "svc", "type": kind, "base_url": "http://h/", "no_such_property": 1,
                           **({"docker": {"image": "i", "port": 1, "future_setting": True}}
                              if kind == "system:microservice" else {})})
    assert system.config["no_such_property"] == 1


@pytest.mark.parametrize(("config", "where", "text"), [
    ({"docker": {"image": "i"}}, "$['docker']", "'port' is a required property"),
    ({"docker": {"port": 5000}}, "$['docker']", "'image' is a required property"),
    ({"docker": {"image": "i", "port": "5000"}}, "$['docker']['port']", "not of type 'integer'"),
    ({"use_https": "yes"}, "$['use_https']", "not of type 'boolean'"),
    ({"base_url": "ftp://h/"}, "$['base_url']", "absolute http or https URL"),
    ({"_id": "x"}, "$['_id']", "does not match"),  # a DNS label: 2-63 characters
    ({"_id": "-svc"}, "$['_id']", "does not match"),
    ({"_id": "s" * 64}, "$['_id']", "does not match"),
    ({"authentication": "jwt"}, "$", "'jwt_token' is a required property"),
])
def test_microservice_config_errors_name_the_path(config: dict[str, Any], where: str, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_system({"_id": "svc", "type": "system:microservice", "base_url": "http://h/", **config})
    assert caught.value.where == where
    assert text in caught.value.detail


# -- in a pipe ---------------------------------------------------------------------------------------------


def latest(datasets: Datasets, name: str) -> dict[str, dict[str, Any]]:
    return {e["_id"]: e for e in datasets.open(name).iter_entities(history=False)}


def enrich_pipe(**transform: Any) -> dict[str, Any]:
    return {"_id": "enriched", "type": "pipe", "batch_size": 2,
            "source": {"type": "embedded", "entities": [{"_id": str(i), "n": i} for i in range(5)]},
            "transform": [{"type": "http", "system": "svc", "url": "enrich", **transform},
                          {"type": "dtl", "rules": {"default": [["copy", "*"], ["add", "twice", ["multiply", 2,
                                                                                                  "_S.n"]]]}}]}


async def test_a_pipe_with_an_http_transform_stores_the_answers(web: WebServer, datasets: Datasets) -> None:
    system = make_system(web.url("/"), "system:microservice")
    web.route("/enrich", lambda request: Answer.json([{**e, "name": f"entity {e['_id']}"} for e in request.json()]))
    await system.open()
    try:
        result = build_runner(enrich_pipe(), datasets, systems={"svc": system}).run()
    finally:
        await system.close()
    assert result.processed == 5
    assert [len(r.json()) for r in web.requests] == [2, 2, 1]  # the pipe's batches, under the transform's 100
    stored = latest(datasets, "enriched")
    assert sorted(stored) == ["0", "1", "2", "3", "4"]
    assert {k: (e["name"], e["twice"]) for k, e in stored.items()} == {
        str(i): (f"entity {i}", 2 * i) for i in range(5)}


async def test_a_pipe_whose_service_fails_writes_nothing_after_the_failure(web: WebServer,
                                                                          datasets: Datasets) -> None:
    system = make_system(web.url("/"))
    web.route("/enrich", seen, Answer(422, b"bad entity"))
    await system.open()
    try:
        runner = build_runner(enrich_pipe(), datasets, systems={"svc": system})
        with pytest.raises(TerminalError, match="answered 422"):
            runner.run()
    finally:
        await system.close()
    assert sorted(latest(datasets, "enriched")) == ["0", "1"]  # the first batch went through
