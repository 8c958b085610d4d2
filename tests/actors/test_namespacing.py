"""Namespace defaults (node-spec 1.6): under ``namespaced_identifiers`` (the pipe's, else the node metadata's)
external sources add namespaces before the first transform and external sinks remove them after the last;
the component's or the pipe's ``add_namespaces``/``remove_namespaces`` overrides the default."""

from __future__ import annotations

from typing import Any

from actors import Datasets, build_runner
from actors._namespacing import strip_wire_namespaces

NI = {"namespaced_identifiers": True}
PEOPLE = [{"_id": "1", "name": "Ann", "rdf:type": "~:crm:person", "addr": {"city": "Oslo"}, "$ids": ["~:crm:1"]}]


def latest(datasets: Datasets, name: str) -> dict[str, dict[str, Any]]:
    return {e["_id"]: e for e in datasets.get(name).iter_entities()}


def embedded(pipe_id: str, **extra: Any) -> dict[str, Any]:
    return {"_id": pipe_id, "type": "pipe", "source": {"type": "embedded", "entities": PEOPLE}, **extra}


def test_an_embedded_source_adds_namespaces_under_node_metadata(datasets: Datasets) -> None:
    build_runner(embedded("crm"), datasets, NI).run()
    stored = latest(datasets, "crm")["crm:1"]
    assert stored["crm:name"] == "Ann" and stored["crm:addr"] == {"crm:city": "Oslo"}
    assert stored["crm:rdf:type"] == "~:crm:person" and stored["$ids"] == ["~:crm:1"]  # $ and values kept
    # a downstream DTL path with the namespace finds the property (the DTL sees the inherited switch)
    downstream = {"_id": "out", "type": "pipe", "source": {"type": "dataset", "dataset": "crm"},
                  "transform": {"type": "dtl", "rules": {"default": [["add", "::who", "_S.crm:name"]]}}}
    build_runner(downstream, datasets, NI).run()
    assert latest(datasets, "out")["crm:1"]["who"] == "Ann"


def test_switches_off_by_default_and_overridable(datasets: Datasets) -> None:
    build_runner(embedded("plain"), datasets, {}).run()
    assert "name" in latest(datasets, "plain")["1"]
    build_runner(embedded("off", add_namespaces=False), datasets, NI).run()
    assert "name" in latest(datasets, "off")["1"]
    pipe = embedded("src-off")
    pipe["source"] = {**pipe["source"], "add_namespaces": False}
    build_runner(pipe, datasets, {**NI, "namespaced_identifiers": True}).run()
    assert "name" in latest(datasets, "src-off")["1"]
    build_runner(embedded("pipe-on", namespaced_identifiers=True), datasets, {}).run()
    assert "pipe-on:name" in latest(datasets, "pipe-on")["pipe-on:1"]
    build_runner(embedded("named", namespaces={"identity": "id", "property": "p"}), datasets, NI).run()
    assert "p:name" in latest(datasets, "named")["id:1"]


def test_an_external_sink_removes_namespaces(datasets: Datasets) -> None:
    build_runner(embedded("crm"), datasets, NI).run()
    publisher = build_runner({"_id": "pub", "type": "pipe", "source": {"type": "dataset", "dataset": "crm"},
                              "sink": {"type": "http_endpoint"}}, datasets, NI)
    [entity] = [e for batch in publisher.publish() for e in batch]
    assert entity["_id"] == "1" and entity["name"] == "Ann" and entity["addr"] == {"city": "Oslo"}
    assert entity["type"] == "~:person" and entity["$ids"] == ["~:crm:1"]
    kept = build_runner({"_id": "pub2", "type": "pipe", "source": {"type": "dataset", "dataset": "crm"},
                         "sink": {"type": "http_endpoint", "remove_namespaces": False}}, datasets, NI)
    [entity] = [e for batch in kept.publish() for e in batch]
    assert entity["_id"] == "crm:1" and entity["crm:name"] == "Ann" and entity["crm:rdf:type"] == "~:crm:person"
    # a dataset sink keeps them
    build_runner({"_id": "copy", "type": "pipe", "source": {"type": "dataset", "dataset": "crm"}}, datasets, NI).run()
    assert "crm:name" in latest(datasets, "copy")["crm:1"]


def test_strip_wire_namespaces() -> None:
    assert strip_wire_namespaces({"_id": "a:b:c", "x:y": ["~:ns:v", "~:bare", "~~:text"], "$k": {"p:q": 1},
                                  "n": {"m:o": "~:a:b"}, "_deleted": False}) == {
        "_id": "b:c", "y": ["~:v", "~:bare", "~~:text"], "$k": {"p:q": 1}, "n": {"o": "~:b"}, "_deleted": False}
