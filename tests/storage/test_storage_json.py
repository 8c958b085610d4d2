"""JSON from outside: Decimal literals, big ints, error positions, and the streaming reader."""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import NI, JSONError, canonical, decode, dumps, iter_json_entities, loads, parse_json


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("22.10", "~f22.10"),
        ("1.0", "~f1.0"),
        ("-0.0", "~f-0.0"),
        ("1e5", "~f1e5"),
        ("1E+5", "~f1E+5"),
        ("2.50e-3", "~f2.50e-3"),
        ("12345678901234567890.1234567890", "~f12345678901234567890.1234567890"),
        ("7", 7),
        ("-0", 0),
        ("123456789012345678901234567890", 123456789012345678901234567890),
        ("-98765432109876543210987654321098765432", -98765432109876543210987654321098765432),
        ('"~f1.5"', "~f1.5"),
        ("true", True),
        ("null", None),
    ],
)
def test_numbers(text: str, expected: Any) -> None:
    assert parse_json(text) == expected
    assert parse_json(text.encode()) == expected
    assert type(parse_json(text)) is type(expected)


def test_decimal_literals_decode_exactly() -> None:
    entity = parse_json(b'{"_id": "a", "price": 22.10, "list": [1.50, 2], "nested": {"x": 3.0}}')
    assert entity == {"_id": "a", "price": "~f22.10", "list": ["~f1.50", 2], "nested": {"x": "~f3.0"}}
    typed = decode(entity)
    assert str(typed["price"]) == "22.10"
    assert typed["list"][0] == Decimal("1.50")


def test_big_ints_survive_storage_round_trips() -> None:
    big = {"n": 10**40, "m": -(2**70), "k": 2**64}
    assert loads(dumps(big)) == big
    assert loads(canonical(big)) == big
    assert canonical(big) == b'{"k":18446744073709551616,"m":-1180591620717411303424,"n":' + b"1" + b"0" * 40 + b"}"


def test_canonical_sorts_keys_and_is_compact() -> None:
    assert canonical({"b": 1, "a": {"d": [1, {"z": 1, "y": 2}], "c": "é"}}) == (
        '{"a":{"c":"é","d":[1,{"y":2,"z":1}]},"b":1}'.encode()
    )
    assert canonical({"b": 1, "a": 10**30}) == b'{"a":' + b"1" + b"0" * 30 + b',"b":1}'


@pytest.mark.parametrize(
    "not_wire",
    [Decimal("1.5"), {1, 2}, b"x", object(), dt.datetime(2020, 1, 1), dt.date(2020, 1, 1), NI("a"), {1: 2}],
)
def test_canonical_rejects_values_that_are_not_wire_form(not_wire: Any) -> None:
    with pytest.raises(TypeError):
        canonical({"a": [not_wire]})
    with pytest.raises(TypeError):
        canonical({"a": [not_wire], "big": 10**30})  # the slow path too
    with pytest.raises(TypeError):
        dumps([not_wire])


@pytest.mark.parametrize(
    ("data", "line", "column"),
    [
        (b'{"a": x}', 1, 7),
        ('{"ä": x}', 1, 7),
        (b'{"\xc3\xa4": x}', 1, 7),
        (b'{\n  "a": 1,\n  "b": oops\n}', 3, 8),
        (b'{"a": 1', 1, 8),
        (b"[1, 2] 3", 1, 8),
        (b"", 1, 1),
        (b"NaN", 1, 1),
    ],
)
def test_parse_errors_have_line_and_column(data: bytes | str, line: int, column: int) -> None:
    with pytest.raises(JSONError) as info:
        parse_json(data)
    assert (info.value.line, info.value.column) == (line, column)
    assert f"line {line}, column {column}" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_byte_order_mark_is_skipped() -> None:
    assert parse_json(b'\xef\xbb\xbf{"a": 1.5}') == {"a": "~f1.5"}
    assert parse_json('\ufeff[1]') == [1]


# -- the streaming reader ----------------------------------------------------------------------------


def _stream(data: bytes, chunk_size: int) -> list[tuple[Any, int]]:
    return list(iter_json_entities(io.BytesIO(data), chunk_size=chunk_size))


CHUNKS = [1, 2, 3, 7, 1 << 20]


@pytest.mark.parametrize("chunk_size", CHUNKS)
def test_array(chunk_size: int) -> None:
    data = '[\n {"_id": "a", "x": 1.50},\n {"_id": "é", "y": [1, 2e3]} ,\n\n {"_id": "c"}\n]\n'.encode()
    assert _stream(data, chunk_size) == [
        ({"_id": "a", "x": "~f1.50"}, 2),
        ({"_id": "é", "y": [1, "~f2e3"]}, 3),
        ({"_id": "c"}, 5),
    ]


@pytest.mark.parametrize("chunk_size", CHUNKS)
def test_ndjson(chunk_size: int) -> None:
    data = '{"_id": "a", "x": 22.10}\n\n  {"_id": "ø"}\r\n{"_id": "c", "big": 123456789012345678901234567890}'
    assert _stream(data.encode(), chunk_size) == [
        ({"_id": "a", "x": "~f22.10"}, 1),
        ({"_id": "ø"}, 3),
        ({"_id": "c", "big": 123456789012345678901234567890}, 4),
    ]


@pytest.mark.parametrize("chunk_size", CHUNKS)
def test_numbers_cut_by_chunk_boundaries(chunk_size: int) -> None:
    assert _stream(b"[1234, 1.5e-3, -7, 0.25]", chunk_size) == [
        (1234, 1), ("~f1.5e-3", 1), (-7, 1), ("~f0.25", 1)
    ]
    assert _stream(b"1234\n-1.5E+30\n98", chunk_size) == [(1234, 1), ("~f-1.5E+30", 2), (98, 3)]


@pytest.mark.parametrize("data", [b"", b"  \n\t ", b"[]", b"[ \n ]\n", b"\xef\xbb\xbf[]"])
def test_empty_inputs(data: bytes) -> None:
    assert _stream(data, 1) == []
    assert _stream(data, 100) == []


def test_byte_order_mark_in_stream() -> None:
    assert _stream(b'\xef\xbb\xbf[{"_id": "a"}]', 1) == [({"_id": "a"}, 1)]
    assert _stream(b'\xef\xbb\xbf{"_id": "a"}\n', 2) == [({"_id": "a"}, 1)]


@pytest.mark.parametrize(
    ("data", "line", "column"),
    [
        (b'[{"a": 1},\n {"b": }]', 2, 8),
        (b'[{"a": 1},]', 1, 11),
        (b'[{"a": 1}', 1, 10),
        (b'[{"a": 1} {"b": 2}]', 1, 11),
        (b'[{"a": 1}] x', 1, 12),
        (b'{"a": 1} {"b": 2}\n', 1, 10),
        (b'{"a": 1}\n{"b": 2,}\n', 2, 9),
        (b'{"a": 1}\n{"b": "x', 2, 7),
        (b'{"a": 1}\n{"b": NaN}\n', 2, 1),
        (b'[1, Infinity]', 1, 5),
        (b'{"a": "\xff"}\n', 1, 8),
        (b'{"\xc3\xa4": "\xc3"}', 1, 8),
        (b'{"a": 1}\n{"b": "\xc3', 2, 8),
    ],
)
@pytest.mark.parametrize("chunk_size", [1, 3, 1 << 20])
def test_stream_errors(data: bytes, line: int, column: int, chunk_size: int) -> None:
    with pytest.raises(JSONError) as info:
        _stream(data, chunk_size)
    assert (info.value.line, info.value.column) == (line, column)


def test_items_before_an_error_are_yielded() -> None:
    items = iter_json_entities(io.BytesIO(b'{"a": 1}\n{"b": 2}\n{oops}\n'), chunk_size=4)
    assert next(items) == ({"a": 1}, 1)
    assert next(items) == ({"b": 2}, 2)
    with pytest.raises(JSONError) as info:
        next(items)
    assert info.value.line == 3


class _CountingReader(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.read_bytes += len(chunk)
        return chunk


def test_an_early_error_does_not_read_the_whole_stream() -> None:
    data = b'[{"a": oops},' + b'{"b": 1},' * 100_000 + b"{}]"
    reader = _CountingReader(data)
    with pytest.raises(JSONError):
        list(iter_json_entities(reader, chunk_size=1024))
    assert reader.read_bytes <= 4096


def test_long_streams_keep_lines_right() -> None:
    lines = [json.dumps({"_id": str(i), "pad": "x" * (i % 50), "n": i / 4}) for i in range(20_000)]
    data = ("\n".join(lines) + "\n").encode()
    result = list(iter_json_entities(io.BytesIO(data), chunk_size=5000))
    assert len(result) == 20_000
    assert all(item["_id"] == str(line - 1) for item, line in result)
    broken = data + b'{"_id": "last",\n  "x": ]}\n'
    with pytest.raises(JSONError) as info:
        list(iter_json_entities(io.BytesIO(broken), chunk_size=5000))
    assert (info.value.line, info.value.column) == (20_002, 8)
    array = ("[" + ",\n".join(lines) + "\n, x]").encode()
    with pytest.raises(JSONError) as info:
        list(iter_json_entities(io.BytesIO(array), chunk_size=777))
    assert (info.value.line, info.value.column) == (20_001, 3)


def test_a_large_item_across_many_chunks() -> None:
    item = {"_id": "big", "text": "é" * 100_000, "n": [1.25] * 1000}
    data = json.dumps([item, {"_id": "next"}], ensure_ascii=False).encode()
    result = _stream(data, 4096)
    assert result[0][0]["text"] == item["text"]
    assert result[0][0]["n"] == ["~f1.25"] * 1000
    assert result[1] == ({"_id": "next"}, 1)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5),
              st.decimals(allow_nan=False, allow_infinity=False, places=3)),
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=3), c, max_size=3)),
    max_leaves=10,
)


def _literal(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value) if "." in str(value) or "E" in str(value) else str(value) + ".0"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


@settings(max_examples=50)
@given(st.lists(st.dictionaries(st.text(max_size=3), json_values, max_size=3), max_size=5),
       st.integers(1, 9), st.booleans())
def test_stream_agrees_with_parse_json(items: list[dict[str, Any]], chunk_size: int, ndjson: bool) -> None:
    texts = [_literal(v) for v in items]
    data = ("\n".join(texts) if ndjson else "[" + ",".join(texts) + "]").encode()
    if ndjson and not items:
        data = b""
    streamed = [item for item, _line in _stream(data, chunk_size)]
    assert streamed == [parse_json(t) for t in texts]


def test_deep_nesting_and_bad_text_are_json_errors() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(JSONError, match="nested too deeply"):
        parse_json(deep)
    with pytest.raises(JSONError, match="nested too deeply") as info:
        _stream(b"\n" + deep, 1 << 20)
    assert (info.value.line, info.value.column) == (2, 2)
    with pytest.raises(JSONError, match="surrogate"):
        parse_json('"\ud800"')


def test_bytes_that_are_not_utf8_are_a_json_error_naming_the_place() -> None:
    with pytest.raises(JSONError, match=r"not UTF-8 \(line 2, column 11: byte 0xff\)"):
        parse_json(b'[\n{"_id": "a\xff"}]')
    with pytest.raises(JSONError, match="not UTF-8"):
        parse_json('["\udc80"]'.encode("utf-8", "surrogatepass"))
