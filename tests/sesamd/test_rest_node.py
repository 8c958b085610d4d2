"""The ``rest`` source and sink through a real ``sesamd serve``: a ``system:rest`` on a web server the test
starts, a pipe reading a paginated listing into a dataset, and a pipe PUTting each of its entities back to
the service, checked in the dataset and request by request on the server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from actors.testing import Answer, WebRequest, WebServer
from sesamd.testing import run_pipe_over_http, serve_process

PEOPLE = [{"id": f"p{i}", "name": f"Person {i}", "age": 20 + i} for i in range(1, 6)]


def listing(request: WebRequest) -> Answer:
    """Two people a page; the next page's link in the body."""
    page = int(request.query.get("page", "1"))
    body: dict[str, Any] = {"results": PEOPLE[(page - 1) * 2:page * 2]}
    if page * 2 < len(PEOPLE):
        body["next"] = f"?page={page + 1}"
    return Answer.json(body)


def config(web: WebServer) -> list[dict[str, Any]]:
    return [
        {"_id": "crm", "type": "system:rest", "url_pattern": web.url("/api/%s"), "headers": {"X-Key": "k"},
         "operations": {
             "list-people": {"method": "GET", "url": "people", "next_page_link": "{{ body.next }}",
                             "payload_property": "results", "id_expression": "{{ id }}"},
             "put-person": {"method": "PUT", "url": "people/{{ _id }}",
                            "payload": {"name": "{{ name }}", "age": "{{ age }}sesam:markjson",
                                        "source": "{{ properties.source }}"}},
         }},
        {"_id": "people", "type": "pipe", "source": {"type": "rest", "system": "crm", "operation": "list-people"},
         "pump": {"mode": "manual"}},
        {"_id": "people-out", "type": "pipe", "source": {"type": "dataset", "dataset": "people"},
         "sink": {"type": "rest", "system": "crm", "operation": "put-person", "properties": {"source": "sesamd"}},
         "pump": {"mode": "manual"}},
    ]


def test_a_paginated_rest_source_and_a_rest_sink_through_the_daemon(tmp_path: Path) -> None:
    with WebServer() as web:
        web.route("/api/people", listing)
        for person in PEOPLE:
            web.route(f"/api/people/{person['id']}", Answer.json({"ok": True}))
        with serve_process(tmp_path / "data") as daemon, \
                httpx.Client(base_url=daemon.url, headers=daemon.headers, timeout=30) as client:
            response = httpx.put(daemon.url + "/config", json=config(web), headers=daemon.headers, timeout=30)
            assert response.status_code == 200, response.text

            runtime = run_pipe_over_http(client, "people")
            assert runtime["success"] is True, runtime
            entities = client.get("/datasets/people/entities", params={"deleted": "false"}).json()
            assert [(e["_id"], e["name"], e["age"]) for e in entities] == [
                (p["id"], p["name"], p["age"]) for p in PEOPLE]
            pages = web.of("/api/people")
            assert [r.query.get("page") for r in pages] == [None, "2", "3"]
            assert all(r.headers["x-key"] == "k" for r in pages)

            runtime = run_pipe_over_http(client, "people-out")
            assert runtime["success"] is True, runtime
            for person in PEOPLE:
                [put] = web.of(f"/api/people/{person['id']}")
                assert put.method == "PUT" and put.headers["content-type"] == "application/json"
                assert put.json() == {"name": person["name"], "age": person["age"], "source": "sesamd"}
            assert daemon.terminate() == 0
