"""The ``system:rest`` system and the ``rest`` source, sink and transform (node-spec 6.12, 7.4, 8.10, 10.2)
against a local web server: paging by a link in the body and by a ``Link`` header, continuation, 429s with
``Retry-After``, failing answers naming the URL, per-entity requests of every payload type checked request by
request, deletes, write errors, the transform's answers and status codes, and config errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
import trio

from actors import ConfigError, Datasets, PipeRunError, build_runner
from actors.components import TerminalError, TransientError, build_system
from actors.components.system_rest import RestSystem
from actors.testing import Answer, WebRequest, WebServer

MEN = [{"id": f"m{i}", "name": f"Man {i}", "seq": i, "height": 1.5 + i / 10} for i in range(1, 8)]


@pytest.fixture
def web() -> Iterator[WebServer]:
    with WebServer() as server:
        yield server


@pytest.fixture
def opened() -> Iterator[list[RestSystem]]:
    systems: list[RestSystem] = []
    yield systems
    for system in systems:
        trio.run(system.close)


@pytest.fixture
def make(web: WebServer, opened: list[RestSystem]) -> Any:
    """Build and open a ``system:rest`` ``api`` on the server's ``/api/``, with ``operations``."""

    def system(operations: dict[str, Any], **config: Any) -> RestSystem:
        built = build_system({"_id": "api", "type": "system:rest", "url_pattern": web.url("/api/%s"),
                              "operations": operations, **config})
        assert isinstance(built, RestSystem)
        trio.run(built.open)
        opened.append(built)
        return built

    return system


def source_pipe(source: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"_id": "men", "type": "pipe", "source": {"type": "rest", "system": "api", **source}, **extra}


def stored(datasets: Datasets, name: str = "men") -> list[dict[str, Any]]:
    dataset = datasets.get(name)
    assert dataset is not None
    return [{k: v for k, v in e.items() if not k.startswith("_") or k == "_id" or (k == "_deleted" and v)}
            for e in dataset.iter_entities(history=False)]


def pages_of(items: list[dict[str, Any]], size: int, path: str) -> Any:
    """A handler serving ``items`` ``size`` at a time by ``?page=``, with the next link in the body."""

    def answer(request: WebRequest) -> Answer:
        page = int(request.query.get("page", "1"))
        chunk = items[(page - 1) * size:page * size]
        body: dict[str, Any] = {"data": {"items": chunk}}
        if page * size < len(items):
            body["next"] = f"{path}?page={page + 1}" if page % 2 else f"?page={page + 1}"  # both relative forms
        return Answer.json(body)

    return answer


# -- the source ------------------------------------------------------------------------------------------------


def test_the_source_follows_next_page_links_in_the_body(web: WebServer, make: Any, datasets: Datasets) -> None:
    web.route("/api/men", pages_of(MEN, 3, "/api/men"))
    system = make({"list-men": {"method": "GET", "url": "men", "next_page_link": "{{ body.next }}",
                                "params": {"size": "{{ page_size }}", "first": "{{ is_first_page }}"},
                                "page_size": 3}})
    runner = build_runner(source_pipe({"operation": "list-men", "payload_property": "data.items",
                                       "id_expression": "{{ id }}"}, batch_size=2), datasets,
                          systems={"api": system})
    result = runner.run()
    assert result.processed == 7
    men = {e["_id"]: e for e in stored(datasets)}
    assert sorted(men) == [m["id"] for m in MEN]
    assert men["m1"] == {"_id": "m1", "id": "m1", "name": "Man 1", "seq": 1, "height": "~f1.6"}  # exact decimals
    requests = web.of("/api/men")
    assert [r.query for r in requests] == [{"size": "3", "first": "True"}, {"size": "3", "first": "False", "page": "2"},
                                           {"size": "3", "first": "False", "page": "3"}]


def test_the_source_follows_a_link_header(web: WebServer, make: Any, datasets: Datasets) -> None:
    def answer(request: WebRequest) -> Answer:
        page = int(request.query.get("page", "1"))
        links = [f'<{web.url("/api/women")}?page={page - 1}>; rel="prev"'] if page > 1 else []
        if page < 3:
            links.append(f'<{web.url("/api/women")}?page={page + 1}>; rel="next"')
        headers = {"Link": ", ".join(links)} if links else {}
        return Answer.json([{"_id": f"w{page}-{i}", "page": page} for i in range(2)], headers=headers)

    web.route("/api/women", answer)
    system = make({"women": {"method": "GET", "url": "women", "next_page_link": "{{ headers.Link.next }}"}})
    runner = build_runner(source_pipe({"operation": "women", "response_status_property": "status"}), datasets,
                          systems={"api": system})
    assert runner.run().processed == 6
    assert [(e["_id"], e["status"]) for e in stored(datasets)] == [
        (f"w{p}-{i}", 200) for p in (1, 2, 3) for i in range(2)]
    assert [r.query.get("page") for r in web.of("/api/women")] == [None, "2", "3"]


@pytest.mark.parametrize(("strategy", "requests"), [
    ("empty-result", 4),  # the 4th page is empty
    ("not-full-page", 3),  # the 3rd has 1 of 3
    (["same-next-page-link", "next-page-link-empty"], 4),
])
def test_termination_strategies(web: WebServer, make: Any, datasets: Datasets, strategy: Any,
                                requests: int) -> None:
    def answer(request: WebRequest) -> Answer:
        page = int(request.query.get("page", "0"))
        items = MEN[page * 3:page * 3 + 3]
        return Answer.json({"items": items, "next": f"?page={min(page + 1, 3)}"})

    web.route("/api/men", answer)
    system = make({"men": {"method": "GET", "url": "men", "next_page_link": "{{ body.next }}", "page_size": 3,
                           "next_page_termination_strategy": strategy}})
    runner = build_runner(source_pipe({"operation": "men", "payload_property": "items",
                                       "id_expression": "{{ id }}"}), datasets, systems={"api": system})
    assert runner.run().processed == 7
    assert len(web.of("/api/men")) == requests


def test_since_is_sent_and_updated_expression_sets_the_offset(web: WebServer, make: Any, datasets: Datasets) -> None:
    web.route("/api/men", lambda request: Answer.json(
        [m for m in MEN if m["seq"] > int(request.headers.get("x-since", "0"))]))
    system = make({"men": {"method": "GET", "url": "men", "since_property_name": "X-Since",
                           "since_property_location": "header"}})
    runner = build_runner(source_pipe({"operation": "men", "id_expression": "{{ id }}",
                                       "updated_expression": "{{ seq }}", "supports_since": True,
                                       "is_chronological": True}), datasets, systems={"api": system})
    assert runner.run().offset == 7
    assert "x-since" not in web.of("/api/men")[0].headers
    web.route("/api/men", lambda request: Answer.json(
        [{"id": "m8", "seq": 8}] if request.headers.get("x-since") == "7" else []))
    second = runner.run()
    assert (second.processed, second.offset) == (1, 8)
    assert web.of("/api/men")[-1].headers["x-since"] == "7"


def test_since_in_the_url_template_replaces_the_parameter(web: WebServer, make: Any, datasets: Datasets) -> None:
    web.route("/api/changes/5", Answer.json([{"_id": "a", "seq": 6}]))
    system = make({"changes": {"method": "GET", "url": "changes/{{ since }}"}})
    runner = build_runner(source_pipe({"operation": "changes", "supports_since": True, "initial_since_value": 5,
                                       "updated_expression": "{{ seq }}"}), datasets, systems={"api": system})
    assert runner.run().offset == 6
    assert web.of("/api/changes/5")[0].query == {}  # not also a query parameter


def test_a_429_waits_out_retry_after_then_succeeds(web: WebServer, make: Any, datasets: Datasets) -> None:
    web.route("/api/men", Answer(429, b"slow down", headers={"Retry-After": "7"}), Answer.json(MEN[:2]))
    system = make({"men": {"method": "GET", "url": "men"}}, rate_limiting_retries=2, rate_limiting_delay=0)
    runner = build_runner(source_pipe({"operation": "men", "id_expression": "{{ id }}"}), datasets,
                          systems={"api": system})
    waits: list[float] = []
    runner.source.sleep = waits.append  # type: ignore[attr-defined]
    assert runner.run().processed == 2
    assert waits == [7.0]
    assert len(web.of("/api/men")) == 2


def test_429s_beyond_rate_limiting_retries_fail_the_run(web: WebServer, make: Any, datasets: Datasets) -> None:
    web.route("/api/men", Answer(429, b"slow down"))
    system = make({"men": {"method": "GET", "url": "men", "rate_limiting_retries": 5, "rate_limiting_delay": 2}})
    runner = build_runner(source_pipe({"operation": "men", "rate_limiting_retries": 1}), datasets,
                          systems={"api": system})  # the source's setting wins; the operation's delay applies
    waits: list[float] = []
    runner.source.sleep = waits.append  # type: ignore[attr-defined]
    with pytest.raises(PipeRunError) as failed:
        runner.run()
    assert waits == [2.0] and len(web.of("/api/men")) == 2
    assert "answered 429" in failed.value.message and "(after 1 retry)" in failed.value.message


def test_a_500_fails_the_run_naming_the_url(web: WebServer, make: Any, datasets: Datasets) -> None:
    web.route("/api/men", Answer(500, b"database down"))
    system = make({"men": {"method": "GET", "url": "men", "params": {"q": "x"}}})
    runner = build_runner(source_pipe({"operation": "men"}), datasets, systems={"api": system})
    with pytest.raises(PipeRunError) as failed:
        runner.run()
    message = failed.value.message
    assert message.startswith("reading the source failed: GET ")
    assert f"{web.url('/api/men')}?q=x answered 500" in message and "database down" in message
    assert datasets.get("men") is None or stored(datasets) == []


def test_non_json_answers_and_error_expression(web: WebServer, make: Any, datasets: Datasets) -> None:
    web.route("/api/page", Answer(200, b"<p>hi</p>", content_type="text/html"))
    system = make({"page": {"method": "GET", "url": "page"},
                   "odd": {"method": "GET", "url": "odd", "payload_property": "data",
                           "error_expression": "{% if body.error %}{{ body.error }}{% endif %}"}},
                  json_content_types=["application/vnd.odd+json"])
    runner = build_runner(source_pipe({"operation": "page", "response_property": "html",
                                       "response_include_content_type": True, "id_expression": "page"}),
                          datasets, systems={"api": system})
    runner.run()
    assert stored(datasets) == [{"_id": "page", "html": "<p>hi</p>", "content-type": "text/html"}]
    web.route("/api/odd", Answer(200, b'{"data": [{"_id": "x", "v": "~t2024-01-01"}]}',
                                 content_type="application/vnd.odd+json"),
              Answer(200, b'{"error": "quota used up"}', content_type="application/vnd.odd+json"))
    odd = build_runner({**source_pipe({"operation": "odd"}), "_id": "odd"}, datasets, systems={"api": system})
    odd.run()
    assert stored(datasets, "odd") == [{"_id": "x", "v": "~~t2024-01-01"}]  # plain JSON: a literal string
    with pytest.raises(PipeRunError) as failed:
        odd.run()
    assert "error_expression: quota used up" in failed.value.message


# -- the sink --------------------------------------------------------------------------------------------------

OPERATIONS = {
    "put-json": {"method": "PUT", "url": "men/{{ _id }}", "headers": {"X-Who": "{{ properties.who }}"}},
    "post-transit": {"method": "POST", "url": "transit", "payload-type": "json-transit"},
    "post-text": {"method": "POST", "url": "text", "payload-type": "text"},
    "post-form": {"method": "POST", "url": "form", "payload-type": "form"},
    "post-multipart": {"method": "POST", "url": "multipart", "payload-type": "multipart-form"},
    "patch-xml": {"method": "PATCH", "url": "xml", "headers": {"Content-Type": "application/xml"}},
    "delete": {"method": "DELETE", "url": "men/{{ _id }}", "params": {"hard": "{{ properties.hard }}"}},
    "templated": {"method": "POST", "url": "templated", "payload": {
        "id": "{{ _id }}", "n": "{{ properties.n }}sesam:markjson",
        "maybe": "{% if properties.maybe is defined %}{{ properties.maybe }}{% else %}sesam:markskip{% endif %}"}},
}


def sink_pipe(entities: list[dict[str, Any]], sink: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"_id": "out", "type": "pipe", "source": {"type": "embedded", "entities": entities},
            "sink": {"type": "rest", "system": "api", **(sink or {})}, **extra}


def test_the_sink_makes_one_request_per_entity_by_payload_type(web: WebServer, make: Any,
                                                               datasets: Datasets) -> None:
    for path in ("/api/men/ann", "/api/transit", "/api/text", "/api/form", "/api/multipart", "/api/xml",
                 "/api/men/gone", "/api/templated"):
        web.route(path, Answer.json({"ok": True}))
    system = make(OPERATIONS, headers={"X-System": "s"})
    entities = [
        {"_id": "ann", "operation": "put-json", "properties": {"who": "me"},
         "payload": {"name": "Ann", "height": "~f1.70", "born": "~t2000-01-02T03:04:05Z", "tilde": "~~x"}},
        {"_id": "t", "operation": "post-transit", "payload": {"height": "~f1.70", "tilde": "~~t1"}},
        {"_id": "x", "operation": "post-text", "payload": "just text"},
        {"_id": "f", "operation": "post-form", "payload": {"a": "1 2", "b": 3, "c": ["x", "y"]}},
        {"_id": "m", "operation": "post-multipart", "payload": {"field": "value"}},
        {"_id": "xml", "payload": "<man/>"},  # the sink's operation
        {"_id": "gone", "_deleted": True, "operation": "delete", "properties": {"hard": True}},
        {"_id": "skipped", "_deleted": True, "payload": "not sent: a delete without its own operation"},
        {"_id": "tpl", "operation": "templated", "properties": {"n": [1, 2.5]}},
    ]
    runner = build_runner(sink_pipe(entities, {"operation": "patch-xml", "properties": {"who": "sink"}}), datasets,
                          systems={"api": system})
    assert runner.batch_size == 1  # the rest sink's default
    result = runner.run()
    assert result.write_errors == 0 and result.changes == 8

    [put] = web.of("/api/men/ann")
    assert (put.method, put.headers["content-type"], put.headers["x-who"], put.headers["x-system"]) == (
        "PUT", "application/json", "me", "s")
    assert put.body == b'{"name":"Ann","height":1.70,"born":"2000-01-02T03:04:05Z","tilde":"~x"}'  # plain JSON
    [transit] = web.of("/api/transit")
    assert transit.json() == {"height": "~f1.70", "tilde": "~~t1"} and transit.headers["content-type"] == \
        "application/json"
    [text] = web.of("/api/text")
    assert (text.body, text.headers["content-type"]) == (b"just text", "text/plain")
    [form] = web.of("/api/form")
    assert form.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(form.body.decode()) == {"a": ["1 2"], "b": ["3"], "c": ["x", "y"]}
    [multipart] = web.of("/api/multipart")
    assert multipart.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'Content-Disposition: form-data; name="field"\r\n\r\nvalue\r\n' in multipart.body
    [xml] = web.of("/api/xml")
    assert (xml.method, xml.body, xml.headers["content-type"]) == ("PATCH", b"<man/>", "application/xml")
    [delete] = web.of("/api/men/gone")
    assert (delete.method, delete.query, delete.body) == ("DELETE", {"hard": "True"}, b"")
    [templated] = web.of("/api/templated")
    assert json.loads(templated.body) == {"id": "tpl", "n": [1, 2.5]}  # markjson parsed, markskip dropped
    assert len(web.requests) == 8  # the delete without an operation was skipped


def test_entity_values_win_over_sink_config_over_operation_config(web: WebServer, make: Any,
                                                                  datasets: Datasets) -> None:
    web.route("/api/items/op", Answer.json({}))
    web.route("/api/items/sink", Answer.json({}))
    web.route("/api/items/entity", Answer.json({}))
    system = make({"post": {"method": "POST", "url": "items/{{ properties.where }}",
                            "properties": {"where": "op"}, "payload": {"from": "op"}}})
    entities = [{"_id": "1"}, {"_id": "2", "properties": {"where": "entity"}, "payload": {"from": "entity"}}]
    build_runner(sink_pipe(entities, {"operation": "post"}), datasets, systems={"api": system}).run()
    assert [r.json() for r in web.of("/api/items/op")] == [{"from": "op"}]
    assert [r.json() for r in web.of("/api/items/entity")] == [{"from": "entity"}]
    build_runner({**sink_pipe(entities[:1], {"operation": "post", "properties": {"where": "sink"},
                                             "payload": {"from": "sink"}}), "_id": "out2"},
                 datasets, systems={"api": system}).run()
    assert [r.json() for r in web.of("/api/items/sink")] == [{"from": "sink"}]


def test_a_4xx_for_one_entity_is_a_write_error(web: WebServer, make: Any, datasets: Datasets) -> None:
    web.route("/api/men/1", Answer.json({}))
    web.route("/api/men/2", Answer(422, b'{"error": "bad name"}'))
    web.route("/api/men/3", Answer.json({}, status=201))
    system = make(OPERATIONS)
    entities = [{"_id": str(i), "operation": "put-json", "payload": {"n": i}} for i in (1, 2, 3)]
    result = build_runner(sink_pipe(entities, pump={"max_consecutive_write_errors": 5}), datasets,
                          systems={"api": system}).run()
    assert result.write_errors == 1
    assert [len(web.of(f"/api/men/{i}")) for i in (1, 2, 3)] == [1, 1, 1]
    log = datasets.get("system:pump_execution:out")
    assert log is not None
    [error] = [e for e in log.iter_entities(history=False) if e["_id"] == "write-error:2"]
    assert "PUT " + web.url("/api/men/2") + " answered 422" in error["original_error_message"]
    assert error["error_code"] == 1


def test_a_failing_batch_is_not_sent_twice_entity_by_entity(web: WebServer, make: Any, datasets: Datasets) -> None:
    for i in (1, 3):
        web.route(f"/api/men/{i}", Answer.json({}))
    web.route("/api/men/2", Answer(400, b"no"))
    system = make(OPERATIONS)
    entities = [{"_id": str(i), "operation": "put-json", "payload": {"n": i}} for i in (1, 2, 3)]
    result = build_runner(sink_pipe(entities, {"batch_size": 3}, pump={"max_consecutive_write_errors": 5}),
                          datasets, systems={"api": system}).run()
    assert result.write_errors == 1
    assert [len(web.of(f"/api/men/{i}")) for i in (1, 2, 3)] == [1, 2, 1]  # 1 once: delivered before 2 failed


def test_the_sink_retries_429s_by_rate_limiting(web: WebServer, make: Any, datasets: Datasets) -> None:
    web.route("/api/men/1", Answer(429, b"", headers={"Retry-After": "3"}), Answer.json({}))
    system = make(OPERATIONS)
    runner = build_runner(sink_pipe([{"_id": "1", "operation": "put-json", "payload": {}}],
                                    {"rate_limiting_retries": 1, "rate_limiting_delay": 1}),
                          datasets, systems={"api": system})
    waits: list[float] = []
    runner.sink.sleep = waits.append  # type: ignore[attr-defined]
    assert runner.run().write_errors == 0
    assert waits == [3.0] and len(web.of("/api/men/1")) == 2


def test_an_entity_without_operation_or_unknown_operation_is_a_write_error(web: WebServer, make: Any,
                                                                           datasets: Datasets) -> None:
    system = make(OPERATIONS)
    result = build_runner(sink_pipe([{"_id": "a"}, {"_id": "b", "operation": "nope"}],
                                    pump={"max_consecutive_write_errors": 5}),
                          datasets, systems={"api": system}).run()
    assert result.write_errors == 2 and web.requests == []
    log = datasets.get("system:pump_execution:out")
    assert log is not None
    messages = {e["_id"]: e["original_error_message"] for e in log.iter_entities(history=False)
                if e["_id"].startswith("write-error:")}
    assert "names no 'operation'" in messages["write-error:a"]
    assert "no operation 'nope'" in messages["write-error:b"]


# -- the transform -----------------------------------------------------------------------------------------------


def transform_pipe(entities: list[dict[str, Any]], transform: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"_id": "t", "type": "pipe", "source": {"type": "embedded", "entities": entities},
            "transform": {"type": "rest", "system": "api", **transform}, **extra}


def test_the_transform_adds_the_response(web: WebServer, make: Any, datasets: Datasets) -> None:
    web.route("/api/people/bob", Answer.json({"name": "Bob Maker", "score": 2.25}, headers={"X-Rate": "9"}))
    web.route("/api/people/ann", Answer(200, b"plain", content_type="text/plain"))
    web.route("/api/people/nobody", Answer(404, b"{}"))
    system = make({"get-person": {"method": "GET", "url": "people/{{ _id }}", "ignored_status_codes": "404"}})
    entities = [{"_id": "bob", "properties": {"x": 1}}, {"_id": "ann"}, {"_id": "nobody"},
                {"_id": "skipped", "_deleted": True}]
    runner = build_runner(transform_pipe(entities, {"operation": "get-person", "response_status_property": "status",
                                                    "response_headers_property": "hdrs",
                                                    "response_include_content_type": True}),
                          datasets, systems={"api": system})
    runner.run()
    out = {e["_id"]: e for e in stored(datasets, "t")}
    assert out["bob"]["response"] == {"name": "Bob Maker", "score": "~f2.25"}
    assert out["bob"]["status"] == 200 and out["bob"]["hdrs"]["X-Rate"] == "9"
    assert out["bob"]["content-type"] == "application/json" and out["bob"]["properties"] == {"x": 1}
    assert out["ann"]["response"] == "plain"
    assert "nobody" not in out  # an ignored status drops the entity
    assert out["skipped"] == {"_id": "skipped", "_deleted": True}
    assert [r.path for r in web.requests] == ["/api/people/bob", "/api/people/ann", "/api/people/nobody"]


def test_the_transform_replaces_entities_and_pages(web: WebServer, make: Any, datasets: Datasets) -> None:
    web.route("/api/orders", pages_of([{"_id": f"o{i}", "n": i} for i in range(5)], 2, "/api/orders"))
    system = make({"orders": {"method": "GET", "url": "orders", "next_page_link": "{{ body.next }}",
                              "payload_property": "data.items"}})
    build_runner(transform_pipe([{"_id": "x"}], {"operation": "orders", "replace_entity": True}), datasets,
                 systems={"api": system}).run()
    assert [e["_id"] for e in stored(datasets, "t")] == [f"o{i}" for i in range(5)]
    build_runner({**transform_pipe([{"_id": "x"}], {"operation": "orders", "response_property": "orders"}),
                  "_id": "t2"}, datasets, systems={"api": system}).run()
    [kept] = stored(datasets, "t2")
    assert [o["n"] for o in kept["orders"]] == [0, 1, 2, 3, 4]  # all pages' items in one list


def test_a_status_the_transform_does_not_allow_fails_the_run(web: WebServer, make: Any, datasets: Datasets) -> None:
    web.route("/api/people/bob", Answer(409, b"{}"), Answer(500, b"{}"))
    system = make({"get": {"method": "GET", "url": "people/{{ _id }}"}})
    runner = build_runner(transform_pipe([{"_id": "bob"}], {"operation": "get", "allowed_status_codes": "200,409"},
                                         pump={"batch_retries": 0}), datasets, systems={"api": system})
    runner.run()  # 409 allowed
    assert stored(datasets, "t")[0]["response"] == {}
    with pytest.raises(TransientError) as failed:  # a 5xx, after the pump's batch_retries (0 here)
        runner.run()
    assert f"GET {web.url('/api/people/bob')} answered 500" in failed.value.message


def test_if_transform_empty_fail(web: WebServer, make: Any, datasets: Datasets) -> None:
    web.route("/api/people/bob", Answer(404, b"{}"))
    system = make({"get": {"method": "GET", "url": "people/{{ _id }}", "ignored_status_codes": "404"}})
    runner = build_runner(transform_pipe([{"_id": "bob"}], {"operation": "get", "if_transform_empty": "fail"}),
                          datasets, systems={"api": system})
    with pytest.raises(TerminalError, match="if_transform_empty"):
        runner.run()


# -- config errors -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("operation", "where", "text"), [
    ({"method": "get", "url": "x"}, "$['operations']['op']['method']", "is not one of"),
    ({"method": "GET"}, "$['operations']['op']", "'url' is a required property"),
    ({"method": "GET", "url": "x/{{ id"}, "$['operations']['op']['url']", "not a valid Jinja2 template"),
    ({"method": "GET", "url": "x", "headers": {"X": "{% if %}"}}, "$['operations']['op']['headers']['X']",
     "not a valid Jinja2 template"),
    ({"method": "GET", "url": "x", "next_page_termination_strategy": "not-full-page"},
     "$['operations']['op']['next_page_termination_strategy']", "needs 'page_size'"),
    ({"method": "GET", "url": "x", "payload-type": "xml"}, "$['operations']['op']['payload-type']", "is not one of"),
    ({"method": "GET", "url": "x", "allowed_status_codes": "200-299", "ignored_status_codes": "404,250"},
     "$['operations']['op']['ignored_status_codes']", "overlaps"),
    ({"method": "GET", "url": "x", "paylod": {}}, "$['operations']['op']", "Additional properties"),
])
def test_system_operation_errors(operation: dict[str, Any], where: str, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_system({"_id": "api", "type": "system:rest", "url_pattern": "http://h/%s",
                      "operations": {"op": operation}})
    assert caught.value.where == where and text in caught.value.detail


def test_pipe_config_errors(make: Any, datasets: Datasets) -> None:
    system = make({"men": {"method": "GET", "url": "men"}})

    def error(pipe: dict[str, Any], systems: Any = None) -> str:
        with pytest.raises(ConfigError) as caught:
            build_runner(pipe, datasets, systems={"api": system} if systems is None else systems)
        return str(caught.value)

    assert error(source_pipe({"operation": "women"})).startswith(
        "pipe men: source.operation: no operation 'women' in system 'api'")
    assert error(source_pipe({"operation": "x", "operations": {"x": {"method": "GET", "url": "{{ a }"}}})).startswith(
        "pipe men: source.operations.x.url: not a valid Jinja2 template")
    assert error(source_pipe({"operation": "x", "operations": {"x": {"method": "PUSH", "url": "a"}}})).startswith(
        "pipe men: source.operations.x.method:")
    assert error(source_pipe({"operation": "men", "id_expression": "{{ id"})).startswith(
        "pipe men: source.id_expression: not a valid Jinja2 template")
    assert error(source_pipe({})) == "pipe men: source: 'operation' is a required property"
    assert error(sink_pipe([], {"operation": "nope"})).startswith("pipe out: sink.operation: no operation 'nope'")
    assert error(sink_pipe([], {"payload": {"a": "{{ b"}})).startswith(
        "pipe out: sink.payload.a: not a valid Jinja2 template")
    assert error(transform_pipe([], {"operation": "men", "ignored_status_codes": "200"})).startswith(
        "pipe t: transform[0].ignored_status_codes:")
    url_system = build_system({"_id": "api", "type": "system:url", "url_pattern": "http://h/%s"})
    assert "needs a system:rest" in error(source_pipe({"operation": "men"}), {"api": url_system})


def test_pipe_operations_replace_the_systems_by_name(web: WebServer, make: Any, datasets: Datasets) -> None:
    web.route("/api/mine", Answer.json([{"_id": "1"}]))
    system = make({"men": {"method": "GET", "url": "men"}})
    runner = build_runner(source_pipe({"operation": "men", "operations": {"men": {"method": "GET", "url": "mine"}}}),
                          datasets, systems={"api": system})
    assert runner.run().processed == 1
    assert [r.path for r in web.requests] == ["/api/mine"]
    assert system.status()["operations"] == ["men"]


def test_a_missing_system_fails_the_run(datasets: Datasets) -> None:
    runner = build_runner(source_pipe({"operation": "men"}), datasets)
    with pytest.raises(PipeRunError, match="system 'api' is not in the config"):
        runner.run()
