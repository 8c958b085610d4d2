"""Property-based tests: transit round trips of typed values and the stability of the content hash."""

from __future__ import annotations

import datetime as dt
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import storage
from storage import NI, URI, Datetime, canonical, decode, dumps, encode, loads, prepare

MIN_NS = Datetime(1, 1, 1).epoch_ns
MAX_NS = Datetime(9999, 12, 31, 23, 59, 59, 999999, nanosecond=999).epoch_ns

decimals = st.builds(
    lambda sign, digits, exponent: Decimal((sign, tuple(digits), exponent)),
    st.integers(0, 1),
    st.lists(st.integers(0, 9), min_size=1, max_size=30),
    st.integers(-30, 30),
)
trailing_zero_decimals = st.builds(
    lambda whole, zeros: Decimal(f"{whole}.{'0' * zeros}") if zeros else Decimal(f"{whole}.10"),
    st.integers(-(10**20), 10**20),
    st.integers(0, 8),
)
datetimes = st.integers(MIN_NS, MAX_NS).map(Datetime.from_epoch_ns)
tildes = st.builds(lambda tag, rest: "~" + tag + rest, st.sampled_from("~tfrub:dxT F"), st.text(max_size=12))
strings = st.one_of(st.text(max_size=20), tildes)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**64, max_value=2**200),
    st.floats(allow_nan=False, allow_infinity=False),
    decimals,
    trailing_zero_decimals,
    datetimes,
    st.dates(),
    st.text(max_size=12).map(NI),
    st.builds(NI.of, st.text(alphabet="abc:", max_size=4), st.text(max_size=8)),
    st.text(max_size=12).map(URI),
    st.uuids(),
    st.binary(max_size=16),
    strings,
)
typed_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(strings, children, max_size=4),
    ),
    max_leaves=20,
)


def _same(a: Any, b: Any) -> bool:
    """Equal with the same types at every depth (so ``1 == 1.0 == True`` does not pass)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Decimal):
        return a.as_tuple() == b.as_tuple()
    if isinstance(a, Datetime):
        return a == b and a.nanosecond == b.nanosecond and a.tzinfo == b.tzinfo
    return a == b


@given(typed_values)
def test_decode_encode_round_trip(value: Any) -> None:
    wire = encode(value)
    assert _same(decode(wire), value)
    assert _same(encode(decode(wire)), wire)


@given(typed_values)
def test_round_trip_through_json_bytes(value: Any) -> None:
    wire = encode(value)
    assert _same(decode(loads(dumps(wire))), value)
    assert _same(decode(loads(canonical(wire))), value)


@given(datetimes)
def test_datetime_text_round_trip(value: Datetime) -> None:
    text = storage.format_datetime(value)
    assert storage.parse_datetime(text) == value
    assert Datetime.from_epoch_ns(value.epoch_ns) == value


@given(st.dates())
def test_date_round_trip(value: dt.date) -> None:
    assert decode(encode(value)) == value
    assert type(decode(encode(value))) is dt.date


@given(st.text(max_size=30))
def test_every_string_round_trips_with_escaping(text: str) -> None:
    assert decode(encode(text)) == text


@given(trailing_zero_decimals)
def test_decimal_digits_kept(value: Decimal) -> None:
    assert encode(value) == "~f" + str(value)
    assert str(decode(encode(value))) == str(value)


# -- the content hash ----------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), strings
)
wire_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(strings, children, max_size=5)),
    max_leaves=25,
)
bodies = st.dictionaries(st.text(max_size=8).filter(lambda k: not k.startswith("_")), wire_values, max_size=6)


def _reordered(value: Any) -> Any:
    """The same value with every dict's keys in reverse order."""
    if isinstance(value, dict):
        return {k: _reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reordered(v) for v in value]
    return value


def _digest(entity: dict[str, Any]) -> bytes:
    return prepare(entity).digest


@given(bodies, st.text(max_size=10), st.booleans())
def test_hash_ignores_key_order_at_every_depth(body: dict[str, Any], entity_id: str, deleted: bool) -> None:
    entity = {"_id": entity_id, "_deleted": deleted, **body}
    reordered = _reordered(entity)
    assert list(reordered) == list(reversed(list(entity)))
    assert _digest(reordered) == _digest(entity)
    assert prepare(reordered).body == prepare(entity).body


@given(bodies, st.dictionaries(st.text(max_size=6).map(lambda k: "_" + k), wire_values, max_size=4))
def test_hash_ignores_root_underscore_keys(body: dict[str, Any], extra: dict[str, Any]) -> None:
    extra = {k: v for k, v in extra.items() if k not in ("_id", "_deleted")}
    assert _digest({"_id": "x", **body, **extra}) == _digest({"_id": "x", **body})


@given(bodies, wire_values)
def test_nested_underscore_keys_count(body: dict[str, Any], value: Any) -> None:
    nested = {"_id": "x", **body, "n": {"_k": value}}
    assert _digest(nested) != _digest({"_id": "x", **body, "n": {}})


@given(bodies, bodies)
def test_different_bodies_hash_differently(a: dict[str, Any], b: dict[str, Any]) -> None:
    same = canonical(a) == canonical(b)
    assert (_digest({"_id": "x", **a}) == _digest({"_id": "x", **b})) == same


@given(bodies)
def test_deleted_flag_and_id_count(body: dict[str, Any]) -> None:
    live = _digest({"_id": "x", **body})
    assert _digest({"_id": "x", "_deleted": True, **body}) != live
    assert _digest({"_id": "x", "_deleted": False, **body}) == live
    assert _digest({"_id": "y", **body}) != live


def test_hash_tells_types_apart() -> None:
    values = [1, "1", "~f1", "~f1.0", 1.0, True, "true", None, "null", [1], {"1": 1}, [], {}, "", 0, False]
    digests = {_digest({"_id": "x", "v": v}) for v in values}
    assert len(digests) == len(values)
    assert _digest({"_id": "x", "v": None}) != _digest({"_id": "x"})


def test_only_literal_true_deletes() -> None:
    live = _digest({"_id": "x", "a": 1})
    for not_true in ["true", 1, "yes", None, [True], {"x": True}]:
        prepared = prepare({"_id": "x", "a": 1, "_deleted": not_true})
        assert not prepared.deleted
        assert prepared.digest == live


def test_hash_is_pinned() -> None:
    # Stored hashes must not change between releases: the algorithm is part of the stored format.
    expected = "1063182531bd7bdbb596f558143b2cc9"
    assert prepare({"_id": "a", "b": [1, "~f2.50", {"c": None}]}).digest.hex() == expected
    assert prepare({"b": [1, "~f2.50", {"c": None}], "_id": "a", "_ts": 5}).digest.hex() == expected


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from("abcd"), st.dictionaries(st.sampled_from("pq"), typed_values,
                                                                      max_size=2)), max_size=12))
def test_written_entities_read_back_typed(writes: list[tuple[str, dict[str, Any]]]) -> None:
    with tempfile.TemporaryDirectory() as tmp, storage.Dataset(Path(tmp) / "d") as dataset:
        latest: dict[str, dict[str, Any]] = {}
        for entity_id, body in writes:
            dataset.write([encode({"_id": entity_id, **body})])
            latest[entity_id] = body
        for entity_id, body in latest.items():
            stored = dataset.get(entity_id)
            assert stored is not None
            assert len(stored["_hash"]) == 32
            typed = decode({k: v for k, v in stored.items() if not k.startswith("_")})
            assert _same(typed, body)
        assert storage.check_dataset(dataset) == []
