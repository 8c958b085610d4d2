"""Expected output rules (client-spec 8.3-8.7): filtering, numbers, deletes, sorting, writing, comparing."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from sesamd.client._expected import (
    Comparison,
    Difference,
    Options,
    compare,
    compare_raw,
    compare_xml,
    drop_deletes,
    filter_entity,
    normalise_numbers,
    prepare_current,
    pretty_xml,
    render_diff,
    render_expected,
    sort_entities,
)
from sesamd.client._specs import TestSpec


def spec(**fields: object) -> TestSpec:
    values: dict = {"name": "out", "path": Path("/p/expected/out.test.json"), "pipe": "out",
                    "file": Path("/p/expected/out.json"), "endpoint": "json", "stage": None, "parameters": None,
                    "blacklist": (), "ignore": False, "ignore_deletes": True, "fields_to_sort_by": ("_id",)}
    values.update(fields)
    return TestSpec(**values)


# -- 8.3 filtering ---------------------------------------------------------------------------------------------

def test_underscore_properties_removed_at_every_depth() -> None:
    entity = {"_id": "1", "_updated": 3, "_ts": 1, "_hash": "h", "_previous": 2, "_filtered": False,
              "a": {"_id": "inner", "_ts": 1, "b": [{"_hash": "x", "c": 1}]}}
    assert filter_entity(entity, []) == {"_id": "1", "a": {"_id": "inner", "b": [{"c": 1}]}}


def test_deleted_kept_only_when_true() -> None:
    assert filter_entity({"_id": "1", "_deleted": True}, []) == {"_id": "1", "_deleted": True}
    assert filter_entity({"_id": "1", "_deleted": False}, []) == {"_id": "1"}
    assert filter_entity({"_id": "1", "_deleted": 1}, []) == {"_id": "1"}


def test_dollar_keys_kept() -> None:
    entity = {"_id": "1", "$ids": ["~:a:1"], "$replaced": True}
    assert filter_entity(entity, []) == entity


def test_filter_does_not_change_its_input() -> None:
    entity = {"_id": "1", "_ts": 1, "a": {"_x": 1}}
    filter_entity(entity, ["a"])
    assert entity == {"_id": "1", "_ts": 1, "a": {"_x": 1}}


@pytest.mark.parametrize(("pattern", "entity", "kept"), [
    ("foo", {"foo": 1, "foobar": 2, "x": {"foo": 3}}, {"foobar": 2, "x": {"foo": 3}}),
    ("ns1:bar", {"ns1:bar": 1, "ns2:bar": 2}, {"ns2:bar": 2}),
    ("foo.bar", {"foo": {"bar": 1, "baz": 2}}, {"foo": {"baz": 2}}),
    ("foo.bar", {"foo": [{"bar": 1, "baz": 2}, {"bar": 3}]}, {"foo": [{"baz": 2}, {}]}),
    ("foos.*.bar", {"foos": {"A": {"bar": 1, "foobar": 2}, "B": {"bar": 3}}},
     {"foos": {"A": {"foobar": 2}, "B": {}}}),
    ("foos[].bar", {"foos": {"A": {"bar": 1, "foobar": 2}}}, {"foos": {"A": {"foobar": 2}}}),
    ("*.bar", {"a": {"bar": 1, "b": {"bar": 2, "c": 3}}, "bar": 4}, {"a": {"b": {"c": 3}}, "bar": 4}),
    ("ba?", {"bar": 1, "baz": 2, "bars": 3}, {"bars": 3}),
    ("ba[rz]", {"bar": 1, "baz": 2, "bat": 3}, {"bat": 3}),
    ("ba[!r]", {"bar": 1, "baz": 2}, {"bar": 1}),
    ("Foo", {"foo": 1, "Foo": 2}, {"foo": 1}),
    ("a[", {"a[": 1, "a": 2}, {"a": 2}),
])
def test_blacklist_patterns(pattern: str, entity: dict, kept: dict) -> None:
    assert filter_entity({"_id": "1", **entity}, [pattern]) == {"_id": "1", **kept}


def test_escaped_dot_matches_a_dotted_key_only() -> None:
    entity = {"_id": "1", "foo.bar": 1, "foo": {"bar": 2}}
    assert filter_entity(entity, [r"foo\.bar"]) == {"_id": "1", "foo": {"bar": 2}}


def test_plain_dot_also_matches_a_dotted_key_as_sesam_py_did() -> None:
    entity = {"_id": "1", "foo.bar": 1, "foo": {"bar": 2, "baz": 3}}
    assert filter_entity(entity, ["foo.bar"]) == {"_id": "1", "foo": {"baz": 3}}


def test_blacklist_can_drop_underscore_properties_and_id() -> None:
    assert filter_entity({"_id": "1", "_deleted": True, "a": 1}, ["_deleted", "_id"]) == {"a": 1}


# -- 8.4 numbers -----------------------------------------------------------------------------------------------

def test_integral_floats_become_ints() -> None:
    assert normalise_numbers({"a": 25.0, "b": [1.0, 1.5], "c": Decimal("7.0"), "d": Decimal("7.50")}) == {
        "a": 25, "b": [1, 1.5], "c": 7, "d": Decimal("7.50")}
    assert type(normalise_numbers(25.0)) is int


def test_large_ints_go_through_float() -> None:
    assert normalise_numbers(12345678901234567) == 12345678901234568
    assert normalise_numbers(-1234567890123456) == -1234567890123456  # 17 characters with the sign, exact
    assert normalise_numbers(-12345678901234567) == -12345678901234568
    assert normalise_numbers(9007199254740993) == 9007199254740993  # 16 digits: untouched
    assert normalise_numbers(10**23) == 10**23  # via float's shortest repr, not int(float(...))
    assert normalise_numbers(10**23 + 7) == 100000000000000010000000


def test_large_ints_exact_without_the_bug() -> None:
    assert normalise_numbers(12345678901234567, large_int_bugs=False) == 12345678901234567


def test_booleans_and_strings_untouched() -> None:
    value = [True, False, None, "25.0", 1e16, 1.5]
    assert normalise_numbers(value) == value
    assert [type(item) for item in normalise_numbers(value)[:2]] == [bool, bool]


# -- 8.5 deletes -----------------------------------------------------------------------------------------------

CURRENT = [{"_id": "1"}, {"_id": "2", "_deleted": True}, {"_id": "3", "_deleted": True}]


def test_verify_keeps_deletes_the_expected_output_lists() -> None:
    expected = [{"_id": "1"}, {"_id": "2", "_deleted": True}, {"_id": "3"}]
    assert drop_deletes(CURRENT, expected, True) == [{"_id": "1"}, {"_id": "2", "_deleted": True}]


def test_update_drops_every_delete() -> None:
    assert drop_deletes(CURRENT, None, True) == [{"_id": "1"}]


def test_ignore_deletes_false_keeps_them() -> None:
    assert drop_deletes(CURRENT, None, False) == CURRENT
    assert drop_deletes(CURRENT, [], False) == CURRENT


# -- 8.6 sorting -----------------------------------------------------------------------------------------------

def test_sort_by_id_then_whole_entity() -> None:
    entities = [{"_id": "b"}, {"_id": "a", "n": 2}, {"_id": "a", "n": 1}]
    assert sort_entities(entities, ["_id"]) == [{"_id": "a", "n": 1}, {"_id": "a", "n": 2}, {"_id": "b"}]


def test_sort_by_other_fields_and_objects_as_json() -> None:
    entities = [{"_id": "1", "k": {"z": 1}}, {"_id": "2", "k": {"a": 2}}, {"_id": "3", "k": "{\"m\""}]
    assert [e["_id"] for e in sort_entities(entities, ["k"])] == ["2", "3", "1"]


def test_sort_of_mixed_types_does_not_fail() -> None:
    entities = [{"_id": "x"}, {"_id": 2}, {"n": 1}, {"_id": [1]}]
    assert [e.get("_id") for e in sort_entities(entities, ["_id"])] == [None, 2, "x", [1]]


def test_sort_key_json_honours_unicode_encoding() -> None:
    entities = [{"_id": "a", "v": "\u00e6"}, {"_id": "a", "v": "\\"}]
    assert sort_entities(entities, ["_id"])[0]["v"] == "\\"  # '"\\\\"' < '"\u00e6"'
    assert sort_entities(entities, ["_id"], unicode_encoding=True)[0]["v"] == "\\"


# -- 8.7 writing -----------------------------------------------------------------------------------------------

def test_written_file_layout() -> None:
    data = render_expected([{"is-vip": True, "_id": "1"}], Options())
    assert data == b'[\n  {\n    "_id": "1",\n    "is-vip": true\n  }\n]\n'


def test_written_file_nested_layout_and_sorted_keys() -> None:
    data = render_expected([{"_id": "1", "b": {"y": [1, {"q": None}], "x": {}}, "a": []}], Options())
    assert data == (b'[\n  {\n    "_id": "1",\n    "a": [],\n    "b": {\n      "x": {},\n      "y": [\n'
                    b'        1,\n        {\n          "q": null\n        }\n      ]\n    }\n  }\n]\n')


def test_empty_list_file() -> None:
    assert render_expected([], Options()) == b"[]\n"


def test_html_escaping() -> None:
    data = render_expected([{"_id": "1", "h": "<a href='x'>&</a>"}], Options())
    assert b'"h": "\\u003ca href=\'x\'\\u003e\\u0026\\u003c/a\\u003e"' in data
    assert json.loads(data)[0]["h"] == "<a href='x'>&</a>"
    assert b'"h": "<a href=\'x\'>&</a>"' in render_expected([{"_id": "1", "h": "<a href='x'>&</a>"}],
                                                           Options(html_escape=False))


def test_unicode_raw_or_escaped() -> None:
    entities = [{"_id": "\u00f8", "s": "\u00e6\u2603\U0001f600"}]
    assert "\u00e6\u2603\U0001f600".encode() in render_expected(entities, Options())
    escaped = render_expected(entities, Options(unicode_encoding=True))
    assert b'"s": "\\u00e6\\u2603\\ud83d\\ude00"' in escaped
    assert escaped.isascii()


def test_prepare_current_filters_fixes_drops_and_sorts() -> None:
    raw = [{"_id": "b", "_ts": 1, "n": 2.0, "x": "drop"}, {"_id": "a", "_deleted": True},
           {"_id": "c", "_deleted": False, "n": 12345678901234567}]
    prepared = prepare_current(raw, spec(blacklist=("x",)), None, Options())
    assert prepared == [{"_id": "b", "n": 2}, {"_id": "c", "n": 12345678901234568}]
    kept = prepare_current(raw, spec(ignore_deletes=False), None, Options(large_int_bugs=False))
    assert kept == [{"_id": "a", "_deleted": True}, {"_id": "b", "n": 2, "x": "drop"},
                    {"_id": "c", "n": 12345678901234567}]


def test_update_then_compare_round_trips() -> None:
    raw = [{"_id": "2", "total": 40.0, "tags": ["<b>", "\u00e6"]}, {"_id": "1", "big": 123456789012345678}]
    prepared = prepare_current(raw, spec(), None, Options())
    written = json.loads(render_expected(prepared, Options()).decode("utf-8"))
    assert compare(written, prepare_current(raw, spec(), written, Options()), spec(), Options()).equal


# -- 8.6 comparison --------------------------------------------------------------------------------------------

def test_key_order_and_entity_order_do_not_matter() -> None:
    expected = [{"_id": "2", "b": 1, "a": 2}, {"_id": "1"}]
    assert compare(expected, [{"_id": "1"}, {"a": 2, "_id": "2", "b": 1}], spec(), Options()) == Comparison(
        True, summary="Test spec 'expected/out.test.json' passed",
        expected_text=json.dumps([{"_id": "1"}, {"_id": "2", "a": 2, "b": 1}], indent=2),
        current_text=json.dumps([{"_id": "1"}, {"_id": "2", "a": 2, "b": 1}], indent=2),
        expected_name="expected/out.json", current_name="current-output.json")


def test_list_order_inside_entities_matters() -> None:
    result = compare([{"_id": "1", "l": [1, 2]}], [{"_id": "1", "l": [2, 1]}], spec(), Options())
    assert not result.equal
    assert result.differences == (Difference("1", "l[0]", 1, 2, "changed"), Difference("1", "l[1]", 2, 1, "changed"))


def test_int_and_float_differ() -> None:
    result = compare([{"_id": "1", "n": 1.0}], [{"_id": "1", "n": 1}], spec(), Options())
    assert not result.equal
    assert result.differences == (Difference("1", "n", 1.0, 1, "changed"),)


def test_string_and_number_differ() -> None:
    result = compare([{"_id": "1", "n": "1"}], [{"_id": "1", "n": 1}], spec(), Options())
    assert result.differences == (Difference("1", "n", "1", 1, "changed"),)


def test_bool_and_int_differ() -> None:
    assert not compare([{"_id": "1", "n": True}], [{"_id": "1", "n": 1}], spec(), Options()).equal


def test_length_mismatch() -> None:
    result = compare([{"_id": "1"}, {"_id": "2"}], [{"_id": "1"}, {"_id": "3"}, {"_id": "4"}], spec(), Options())
    assert result.summary == "Length mismatch for test spec 'expected/out.test.json': expected 2 got 3"
    assert result.differences == (Difference("2", "", {"_id": "2"}, None, "missing-entity"),
                                  Difference("3", "", None, {"_id": "3"}, "extra-entity"),
                                  Difference("4", "", None, {"_id": "4"}, "extra-entity"))


def test_property_differences() -> None:
    expected = [{"_id": "1", "a": {"b": 1, "gone": True}, "l": [1, 2]}]
    current = [{"_id": "1", "a": {"b": 2, "new": "x"}, "l": [1, 2, 3]}]
    result = compare(expected, current, spec(), Options())
    assert result.summary == "Content mismatch for test spec 'expected/out.json'"
    assert result.differences == (Difference("1", "a.b", 1, 2, "changed"),
                                  Difference("1", "a.gone", True, None, "missing-property"),
                                  Difference("1", "a.new", None, "x", "extra-property"),
                                  Difference("1", "l", [1, 2], [1, 2, 3], "length"))


def test_entities_pair_by_the_sort_fields() -> None:
    sorted_by_n = spec(fields_to_sort_by=("n",))
    result = compare([{"_id": "x1", "n": 1}], [{"_id": "y1", "n": 1}], sorted_by_n, Options())
    assert result.differences == (Difference("x1", "_id", "x1", "y1", "changed"),)


def test_render_diff_names_entity_and_property() -> None:
    result = compare([{"_id": "2", "total": 39.95}, {"_id": "3", "a": 1}],
                     [{"_id": "2", "total": 40.0}, {"_id": "3", "b": "\u00e6"}], spec(), Options())
    text = render_diff(result)
    lines = text.splitlines()
    assert lines[:4] == ["Content mismatch for test spec 'expected/out.json'",
                         "entity '2': property 'total': expected 39.95, got 40.0",
                         "entity '3': property 'a': expected 1, but it is missing",
                         "entity '3': property 'b': not expected, got \"\u00e6\""]
    assert "--- expected/out.json" in lines
    assert "+++ current-output.json" in lines
    assert '-    "total": 39.95' in lines
    assert '+    "total": 40.0' in lines
    assert not render_diff(result, summary=False).startswith("Content mismatch")


def test_render_diff_of_missing_and_extra_entities() -> None:
    text = render_diff(compare([{"_id": "1"}], [{"_id": 2}], spec(), Options()))
    assert "entity '1': expected, but not in the current output" in text
    assert "entity 2: in the current output, but not expected" in text


def test_render_diff_caps_long_lists() -> None:
    expected = [{"_id": str(i), "n": i} for i in range(200)]
    current = [{"_id": str(i), "n": i + 1} for i in range(200)]
    lines = render_diff(compare(expected, current, spec(), Options())).splitlines()
    assert "... and 150 more differences" in lines
    assert lines[-1].startswith("... (") and lines[-1].endswith("more diff lines)")
    assert len(lines) < 200


def test_render_diff_of_equal_comparison_is_its_summary() -> None:
    assert render_diff(compare([], [], spec(), Options())) == "Test spec 'expected/out.test.json' passed"


# -- xml and raw -----------------------------------------------------------------------------------------------

def test_pretty_xml_indents_element_only_content() -> None:
    data = b"<root a='1' xmlns:n='urn:n'><n:item id=\"1\"><name>x &amp; y</name><e></e></n:item>" \
           b"<mixed>text<b>bold</b></mixed><!--note--></root>"
    assert pretty_xml(data) == (b'<root xmlns:n="urn:n" a="1">\n  <n:item id="1">\n    <name>x &amp; y</name>\n'
                                b'    <e/>\n  </n:item>\n  <mixed>text<b>bold</b></mixed>\n  <!--note-->\n</root>\n')


def test_pretty_xml_keeps_the_declaration_only_when_present() -> None:
    assert pretty_xml(b"<?xml version='1.0' encoding='ISO-8859-1' standalone='yes'?><a>\xe6</a>") == (
        b"<?xml version='1.0' encoding='utf-8' standalone='yes'?>\n<a>\xc3\xa6</a>\n")
    assert pretty_xml(b'<?xml version="1.0"?><a/>') == b"<?xml version='1.0' encoding='utf-8'?>\n<a/>\n"
    assert pretty_xml(b"<a/>") == b"<a/>\n"


def test_pretty_xml_keeps_whitespace_that_is_there() -> None:
    indented = b"<a>\n    <b>1</b>\n    <c><d/></c>\n</a>"
    assert pretty_xml(indented) == b"<a>\n    <b>1</b>\n    <c><d/></c>\n</a>\n"


def test_pretty_xml_escapes_like_libxml2() -> None:
    data = b"<a x='a&#10;b&#9;&quot;&lt;&gt;' xmlns:p='urn:p'><![CDATA[<x>]]>&#13;'\"</a>"
    assert pretty_xml(data) == b'<a xmlns:p="urn:p" x="a&#10;b&#9;&quot;&lt;&gt;">&lt;x&gt;&#13;\'"</a>\n'
    assert pretty_xml(b"<a xmlns='urn:d'><c xmlns=''/></a>") == b'<a xmlns="urn:d">\n  <c xmlns=""/>\n</a>\n'


def test_pretty_xml_is_idempotent() -> None:
    once = pretty_xml(b"<a><b><c>1</c></b><d x='&quot;'/></a>")
    assert pretty_xml(once) == once


def test_pretty_xml_rejects_malformed_xml() -> None:
    with pytest.raises(ValueError, match="not well-formed"):
        pretty_xml(b"<a><b></a>")


def test_compare_xml_ignores_serialisation_differences() -> None:
    xml_spec = spec(endpoint="xml", file=Path("/p/expected/out.xml"))
    assert compare_xml(b"<a><b x='1'/></a>", b'<a>\n  <b x="1"></b>\n</a>', xml_spec).equal
    result = compare_xml(b"<a><b>1</b></a>", b"<a><b>2</b></a>", xml_spec)
    assert not result.equal
    assert "-  <b>1</b>" in render_diff(result)
    assert "+++ current_data.xml" in render_diff(result)


def test_compare_xml_falls_back_to_bytes() -> None:
    xml_spec = spec(endpoint="xml")
    assert compare_xml(b"not xml", b"not xml", xml_spec).equal
    assert not compare_xml(b"not xml", b"<a/>", xml_spec).equal


def test_compare_raw_bytes_with_utf8_or_latin1_diff() -> None:
    csv_spec = spec(endpoint="csv", file=Path("/p/expected/out.csv"))
    assert compare_raw(b"a,b\r\n1,2\r\n", b"a,b\r\n1,2\r\n", csv_spec).equal
    line_ends = compare_raw(b"a,b\r\n", b"a,b\n", csv_spec)
    assert not line_ends.equal
    assert [line for line in render_diff(line_ends).splitlines() if line[:1] in "-+"][2:] == ["-a,b\\r", "+a,b"]
    utf8 = compare_raw("x\n\u00e6\n".encode(), b"x\ny\n", csv_spec)
    assert "-\u00e6" in render_diff(utf8).splitlines()
    latin1 = compare_raw(b"x\n\xe6\n", b"x\ny\n", csv_spec)
    assert "-\u00e6" in render_diff(latin1).splitlines()
    assert "+++ current_data.txt" in render_diff(latin1)
