"""The ``json_schema`` transform (node-spec 7.5) and the legacy ``chained`` transform."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import storage
from actors import ConfigError, Datasets, build_runner
from actors.components import BuildContext, TerminalError, Transform, lookup
from dtl import JoinPlan


def latest(datasets: Datasets, name: str) -> dict[str, dict]:
    return {e["_id"]: e for e in datasets.open(name).iter_entities(history=False)}


def seed(datasets: Datasets, name: str, entities: list[dict]) -> None:
    with datasets.writing(name) as dataset:
        dataset.write(entities)


def build(datasets: Datasets, config: dict[str, Any], where: str = "transform[0]") -> Any:
    """A transform built through the registry, as the engine builds it."""
    context = BuildContext("p", {"_id": "p", "type": "pipe"}, datasets)
    spec = lookup("transform", config, f"pipe p: {where}")
    return spec.factory(config, dataclasses.replace(context, where=where))


def schema_transform(datasets: Datasets, schema: Any, **options: Any) -> Any:
    return build(datasets, {"type": "json_schema", "schema": schema, **options})


MEN = {"type": "object", "properties": {"name": {"type": "string"}, "born": {"type": "string"}},
       "required": ["name", "born"]}


# -- json_schema -------------------------------------------------------------------------------------------


def test_documented_example_marks_valid_and_invalid_and_drops_nothing(datasets: Datasets) -> None:
    t = schema_transform(datasets, MEN)
    out = t.transform([{"_id": "3", "name": "Jim"}, {"_id": "5", "name": "Bob", "born": "1972-03-12"}])
    assert out == [{"_id": "3", "name": "Jim", "valid": False, "errors": ["'born' is a required property"]},
                   {"_id": "5", "name": "Bob", "born": "1972-03-12", "valid": True}]


def test_nested_errors_name_their_json_path(datasets: Datasets) -> None:
    schema = {"type": "object", "properties": {
        "address": {"type": "object", "required": ["zip"], "properties": {"zip": {"type": "string"}}},
        "tags": {"type": "array", "items": {"type": "string"}},
        "a b": {"properties": {"c": {"type": "integer"}}}}}
    [out] = schema_transform(datasets, schema).transform(
        [{"_id": "x", "address": {"city": "Oslo"}, "tags": ["ok", 7], "a b": {"c": "no"}}])
    assert out["valid"] is False
    assert out["errors"] == ["$.address: 'zip' is a required property", "$.tags[1]: 7 is not of type 'string'",
                             "$['a b'].c: 'no' is not of type 'integer'"]
    [out] = schema_transform(datasets, schema).transform([{"_id": "y", "address": {"zip": 7}}])
    assert out["errors"] == ["$.address.zip: 7 is not of type 'string'"]


def test_type_required_and_format_failures(datasets: Datasets) -> None:
    schema = {"type": "object", "required": ["_id", "email"], "properties": {
        "email": {"type": "string", "format": "email"}, "ip": {"format": "ipv4"}, "n": {"type": "integer"},
        "kind": {"enum": ["a", "b"]}}, "additionalProperties": {"type": "string"}}
    t = schema_transform(datasets, schema)
    [bad, good] = t.transform([{"_id": "1", "ip": "999.1.1.1", "n": "3", "kind": "c", "extra": 1},
                               {"_id": "2", "email": "a@b.no", "ip": "10.0.0.1", "n": 3, "kind": "a"}])
    assert sorted(bad["errors"]) == sorted([
        "'email' is a required property", "$.ip: '999.1.1.1' is not a 'ipv4'", "$.n: '3' is not of type 'integer'",
        "$.kind: 'c' is not one of ['a', 'b']", "$.extra: 1 is not of type 'string'"])
    assert good == {"_id": "2", "email": "a@b.no", "ip": "10.0.0.1", "n": 3, "kind": "a", "valid": True}
    [out] = t.transform([{"_id": "3", "email": "nope"}])
    assert out["errors"] == ["$.email: 'nope' is not a 'email'"]


def test_decimals_are_numbers_and_the_schema_is_read_from_wire_form(datasets: Datasets) -> None:
    # config comes in wire form: 2.5 and 0.5 arrive as "~f2.5" and "~f0.5"
    config = storage.parse_json(b'{"type": "json_schema", "schema": {"properties": {'
                                b'"price": {"type": "number", "minimum": 2.5, "multipleOf": 0.5},'
                                b'"count": {"type": "integer"}, "ratio": {"maximum": 1}}}}')
    assert config["schema"]["properties"]["price"]["minimum"] == "~f2.5"
    t = build(datasets, config)
    [good, bad] = t.transform([
        {"_id": "1", "price": "~f3.0", "count": "~f4.0", "ratio": "~d0.5"},
        {"_id": "2", "price": "~f2.25", "count": "~f1.5", "ratio": "~f1.01"}])
    assert good["valid"] is True and good["price"] == "~f3.0"  # the entity itself keeps its wire form
    assert bad["errors"] == ["$.price: 2.25 is less than the minimum of 2.5", "$.price: 2.25 is not a multiple of 0.5",
                             "$.count: 1.5 is not of type 'integer'", "$.ratio: 1.01 is greater than the maximum of 1"]
    [text] = schema_transform(datasets, {"properties": {"p": {"type": "string"}}}).transform(
        [{"_id": "3", "p": "~f1.5"}])
    assert text["errors"] == ["$.p: 1.5 is not of type 'string'"]


def test_multiple_of_mixes_decimals_floats_and_integers(datasets: Datasets) -> None:
    t = schema_transform(datasets, {"properties": {"v": {"multipleOf": "~f0.1"}}})
    assert [e["valid"] for e in t.transform([{"_id": "a", "v": "~f0.3"}, {"_id": "b", "v": "~d0.3"},
                                              {"_id": "c", "v": 2}, {"_id": "d", "v": "~f0.35"}])] == \
        [True, True, True, False]


def test_datetimes_and_other_typed_values_are_their_text(datasets: Datasets) -> None:
    schema = {"properties": {
        "at": {"type": "string", "format": "date-time"}, "day": {"type": "string", "format": "date"},
        "ref": {"type": "string", "pattern": "^~:crm:"}, "home": {"type": "string", "pattern": "^https://"},
        "key": {"type": "string", "format": "uuid"}, "raw": {"const": "aGk="}, "tilde": {"const": "~t-not-a-date"}}}
    t = schema_transform(datasets, schema)
    entity = {"_id": "1", "at": "~t2024-05-06T07:08:09.123456789Z", "day": "~t2024-05-06", "ref": "~:crm:42",
              "home": "~rhttps://example.org/", "key": "~u0e4f4a5c-3c0e-4e5b-9a43-5a1a7c6f9b10", "raw": "~baGk=",
              "tilde": "~~t-not-a-date"}
    assert t.transform([entity]) == [{**entity, "valid": True}]
    [bad] = t.transform([{"_id": "2", "at": "~t2024-05-06", "day": "2024-13-01", "ref": "crm:42"}])
    assert bad["errors"] == ["$.at: '2024-05-06' is not a 'date-time'", "$.day: '2024-13-01' is not a 'date'",
                             "$.ref: 'crm:42' does not match '^~:crm:'"]


def test_keys_trigger_on_and_deleted_entities(datasets: Datasets) -> None:
    t = schema_transform(datasets, MEN, key_valid="ok", key_errors="why",
                         trigger_on={"key": "meta.check", "value": "y*"})
    entities = [{"_id": "1", "meta": {"check": "yes"}},
                {"_id": "2", "meta": {"check": "no"}},
                {"_id": "3"},
                {"_id": "4", "meta": {"check": "yes"}, "_deleted": True}]
    out = t.transform(entities)
    assert out[0] == {**entities[0], "ok": False, "why": ["'name' is a required property",
                                                          "'born' is a required property"]}
    assert out[1:] == entities[1:]  # not triggered, or deleted: untouched
    default_key = schema_transform(datasets, MEN, trigger_on={"value": "go"})
    [untouched, checked] = default_key.transform([{"_id": "1"}, {"_id": "2", "_trigger": "go"}])
    assert "valid" not in untouched and checked["valid"] is False


def test_draft_follows_dollar_schema(datasets: Datasets) -> None:
    draft4 = {"$schema": "http://json-schema.org/draft-04/schema#", "properties": {"n": {"maximum": 5,
                                                                                       "exclusiveMaximum": True}}}
    [out] = schema_transform(datasets, draft4).transform([{"_id": "1", "n": 5}])
    assert out["errors"] == ["$.n: 5 is greater than or equal to the maximum of 5"]
    prefix = {"properties": {"l": {"prefixItems": [{"type": "string"}]}}}
    [out] = schema_transform(datasets, prefix).transform([{"_id": "1", "l": [1]}])
    assert out["valid"] is True  # Draft 7 without $schema: prefixItems means nothing
    draft2020 = {"$schema": "https://json-schema.org/draft/2020-12/schema", **prefix}
    [out] = schema_transform(datasets, draft2020).transform([{"_id": "1", "l": [1]}])
    assert out["errors"] == ["$.l[0]: 1 is not of type 'string'"]


@pytest.mark.parametrize(("config", "where", "message"), [
    ({"schema": {"properties": {"a": {"type": "strin"}}}}, "pipe p: transform[0].schema.properties.a.type",
     "not a valid JSON Schema: 'strin' is not valid under any of the given schemas"),
    ({"schema": {"required": "name"}}, "pipe p: transform[0].schema.required", "not a valid JSON Schema"),
    ({"schema": {"$schema": "http://example.org/my-draft"}}, "pipe p: transform[0].schema.$schema",
     "unknown $schema"),
    ({"schema": {"$schema": ["x"]}}, "pipe p: transform[0].schema.$schema", "unknown $schema"),
    ({}, "pipe p: transform[0].schema", "'schema' is a required property"),
    ({"schema_url": "/schema.json", "system": "s"}, "pipe p: transform[0].schema", "schema_url is not supported"),
    ({"schema": []}, "pipe p: transform[0].schema", "is not of type 'object'"),
    ({"schema": {}, "key_valid": ""}, "pipe p: transform[0].key_valid", "should be non-empty"),
    ({"schema": {}, "trigger_on": {"key": "k"}}, "pipe p: transform[0].trigger_on", "'value' is a required"),
])
def test_bad_config_is_a_config_error_at_its_place(datasets: Datasets, config: dict, where: str,
                                                   message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(datasets, {"type": "json_schema", **config})
    assert caught.value.where == where
    assert message in caught.value.detail


def test_a_schema_that_cannot_be_applied_fails_naming_the_entity(datasets: Datasets) -> None:
    t = schema_transform(datasets, {"properties": {"a": {"$ref": "https://example.invalid/other.json"}}})
    assert t.transform([{"_id": "1", "b": 1}])[0]["valid"] is True
    with pytest.raises(TerminalError, match="entity '2': the JSON Schema could not be applied"):
        t.transform([{"_id": "2", "a": 1}])


def test_pipe_run_stores_validation_results(datasets: Datasets) -> None:
    config = storage.parse_json(b'''{"_id": "checked", "type": "pipe",
        "source": {"type": "embedded", "entities": [
            {"_id": "1", "name": "Ann", "born": "1980-01-01", "height": 1.72},
            {"_id": "2", "name": "Bob", "height": "tall", "address": {"zip": 1234}},
            {"_id": "3", "name": "Cid", "born": "1990-02-02", "_deleted": true}]},
        "transform": {"type": "json_schema", "schema": {
            "type": "object", "required": ["name", "born"],
            "properties": {"height": {"type": "number", "maximum": 2.5},
                           "address": {"properties": {"zip": {"type": "string"}}}}}},
        "sink": {"type": "dataset", "dataset": "people"}}''')
    runner = build_runner(config, datasets)
    result = runner.run()
    assert result.processed == 3
    stored = latest(datasets, "people")
    assert stored["1"]["valid"] is True and "errors" not in stored["1"]
    assert stored["1"]["height"] == "~f1.72"
    assert stored["2"]["valid"] is False
    assert stored["2"]["errors"] == ["'born' is a required property", "$.height: 'tall' is not of type 'number'",
                                     "$.address.zip: 1234 is not of type 'string'"]
    assert stored["3"]["_deleted"] is True and "valid" not in stored["3"]


# -- chained --------------------------------------------------------------------------------------------


def dtl(*rules: list, **named: list) -> dict:
    return {"type": "dtl", "rules": {"default": [["copy", "*"], *rules], **named}}


def chained(*members: dict) -> dict:
    return {"type": "chained", "transforms": list(members)}


def test_chained_applies_members_in_order(datasets: Datasets) -> None:
    t = build(datasets, chained(dtl(["add", "n", ["plus", "_S.n", 1]]), dtl(["add", "n", ["multiply", 10, "_S.n"]])))
    assert [type(m).__name__ for m in t.transforms] == ["DTLTransform", "DTLTransform"]
    assert t.transform([{"_id": "a", "n": 1}]) == [{"_id": "a", "n": 20}]  # (1 + 1) * 10, not 1 * 10 + 1
    single = build(datasets, {"type": "chained", "transforms": dtl(["add", "x", 1])})  # an object: a chain of one
    assert single.transform([{"_id": "a"}]) == [{"_id": "a", "x": 1}]
    empty = build(datasets, chained())
    assert empty.transform([{"_id": "a"}]) == [{"_id": "a"}] and empty.join_plan is None


def test_chained_dtl_then_emit_children(datasets: Datasets) -> None:
    t = build(datasets, chained(
        {"type": "dtl", "rules": {"default": [["copy", "_id"], ["create-child", ["apply", "item", "_S.items"]]],
                                  "item": [["add", "_id", "_S.id"], ["copy", "n"]]}},
        {"type": "emit_children"}))
    out = t.transform([{"_id": "p", "items": [{"id": "a", "n": 1}, {"id": "b", "n": 2}]}])
    assert out == [{"_id": "a", "n": 1}, {"_id": "b", "n": 2}]


def test_chained_passes_bound_to_every_member(datasets: Datasets) -> None:
    class Recorder(Transform):
        def transform(self, batch: list, *, bound: Any = None) -> list:
            seen.append(bound)
            return batch

    seen: list[Any] = []
    t = build(datasets, chained(dtl(["add", "b", "_B.x"]), dtl(["add", "c", ["concat", "_S.b", "_B.x"]])))
    t.transforms.append(Recorder({}, t.context))
    assert t.transform([{"_id": "a"}], bound={"x": "1"}) == [{"_id": "a", "b": "1", "c": "11"}]
    assert seen == [{"x": "1"}]
    assert t.transform([{"_id": "a"}]) == [{"_id": "a", "b": None, "c": ""}] and seen[-1] is None


def test_chained_member_errors_name_the_member(datasets: Datasets) -> None:
    with pytest.raises(ConfigError) as caught:
        build(datasets, chained(dtl(), {"type": "dtl", "rules": {"other": []}}))
    assert caught.value.where == "pipe p: transform[0].transforms[1].rules"
    with pytest.raises(ConfigError) as caught:
        build(datasets, chained(dtl(), {"type": "nope"}))
    assert caught.value.where == "pipe p: transform[0].transforms[1].type"
    with pytest.raises(ConfigError) as caught:
        build(datasets, chained(dtl(), chained({"type": "json_schema", "schema": {"type": 5}})), where="transform[2]")
    assert caught.value.where == "pipe p: transform[2].transforms[1].transforms[0].schema.type"
    with pytest.raises(ConfigError) as caught:
        build(datasets, chained(dtl(["add", "x", ["no-such-function"]])))
    assert "pipe p: transform[0].transforms[0]" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        build(datasets, chained(dtl(), "not an object"))
    assert caught.value.where == "pipe p: transform[0].transforms[1]"
    with pytest.raises(ConfigError) as caught:
        build(datasets, {"type": "chained"})
    assert "'transforms' is a required property" in str(caught.value)


def test_pipe_run_with_chained_dtl_and_json_schema(datasets: Datasets) -> None:
    config = {"_id": "chain", "type": "pipe",
              "source": {"type": "embedded", "entities": [{"_id": "1", "age": "41"}, {"_id": "2", "age": "x"}]},
              "transform": chained(dtl(["add", "age", ["integer", "_S.age"]]),
                                   {"type": "json_schema", "schema": {"required": ["age"],
                                                                      "properties": {"age": {"type": "integer"}}}}),
              "sink": {"type": "dataset", "dataset": "out"}}
    runner = build_runner(config, datasets)
    assert runner.preview("after-transforms")[0] == {"_id": "1", "age": 41, "valid": True}
    runner.run()
    stored = latest(datasets, "out")
    assert (stored["1"]["age"], stored["1"]["valid"]) == (41, True)
    assert stored["2"]["valid"] is False and stored["2"]["errors"] == ["$.age: None is not of type 'integer'"]


HOP_TEAM = ["add", "team", ["first", ["hops", {"datasets": ["teams t"], "where": [["eq", "_S.team", "t._id"]]}]]]
HOP_CITY = ["add", "city", ["first", ["hops", {"datasets": ["cities c"], "where": [["eq", "_S.city", "c._id"]]}]]]


def test_chained_join_plans_drive_dependency_tracking(datasets: Datasets) -> None:
    seed(datasets, "people", [{"_id": "1", "team": "t", "city": "o"}])
    seed(datasets, "teams", [{"_id": "t", "label": "T"}])
    seed(datasets, "cities", [{"_id": "o", "label": "Oslo"}])
    one = build(datasets, chained(dtl(HOP_TEAM), dtl(["add", "x", 1])))
    assert one.join_plan is one.transforms[0].join_plan  # a single joining plan is passed on as it is
    assert build(datasets, chained(dtl(), dtl())).join_plan == JoinPlan()
    assert build(datasets, chained({"type": "emit_children"})).join_plan is None
    config = {"_id": "out", "type": "pipe", "source": {"type": "dataset", "dataset": "people"},
              "transform": chained(dtl(HOP_TEAM), dtl(["add", "x", 1]), dtl(HOP_CITY))}
    runner = build_runner(config, datasets)
    assert runner.tracked_datasets == ["cities", "teams"]
    runner.run()
    assert latest(datasets, "out")["1"]["city"]["label"] == "Oslo"
    seed(datasets, "cities", [{"_id": "o", "label": "Oslo!"}])
    result = runner.run()
    assert (result.processed, result.dependencies) == (0, 1)
    assert latest(datasets, "out")["1"]["city"]["label"] == "Oslo!"
    seed(datasets, "teams", [{"_id": "t", "label": "Tee"}])
    result = runner.run()
    assert (result.processed, result.dependencies) == (0, 1)
    assert latest(datasets, "out")["1"]["team"]["label"] == "Tee"
