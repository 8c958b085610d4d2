"""Transit decoding and encoding of every typed value of node-spec 1.4."""

from __future__ import annotations

import datetime as dt
import pickle
import uuid
from decimal import Decimal

import pytest

from storage import NI, URI, Datetime, decode, encode, format_datetime, parse_datetime

UTC = dt.UTC
UUID_TEXT = "531a379e-31bb-4ce1-8690-158dceb64be6"


# -- decoding every tag -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "typed"),
    [
        ("~f22.10", Decimal("22.10")),
        ("~f12345678901234567890.1234567890", Decimal("12345678901234567890.1234567890")),
        ("~f-0.0", Decimal("-0.0")),
        ("~f1E+5", Decimal("1E+5")),
        ("~f1e-3", Decimal("0.001")),
        ("~f7", Decimal(7)),
        ("~rhttp://www.sesam.io/", URI("http://www.sesam.io/")),
        ("~r", URI("")),
        (f"~u{UUID_TEXT}", uuid.UUID(UUID_TEXT)),
        (f"~u{UUID_TEXT.upper()}", uuid.UUID(UUID_TEXT)),
        ("~bAAECAwQF", bytes([0, 1, 2, 3, 4, 5])),
        ("~b", b""),
        ("~:mynamespace:123", NI("mynamespace:123")),
        ("~:foo:x:y", NI("foo:x:y")),
        ("~:bar", NI("bar")),
        ("~t2015-12-31", dt.date(2015, 12, 31)),
        ("~t0001-01-01", dt.date(1, 1, 1)),
        ("~t9999-12-31", dt.date(9999, 12, 31)),
        ("~t1973-01-22T23:11:54Z", Datetime(1973, 1, 22, 23, 11, 54)),
        ("~d1.5", 1.5),
    ],
)
def test_decode_tags(wire: str, typed: object) -> None:
    value = decode(wire)
    assert value == typed
    assert type(value) is type(typed)


def test_decimal_keeps_its_digits() -> None:
    value = decode("~f22.10")
    assert str(value) == "22.10"
    assert value.as_tuple() == Decimal("22.10").as_tuple()
    assert encode(value) == "~f22.10"
    assert encode(Decimal("22.100")) == "~f22.100"


def test_nanosecond_datetimes() -> None:
    value = decode("~t2015-01-02T03:04:05.123456789Z")
    assert isinstance(value, Datetime)
    assert (value.microsecond, value.nanosecond) == (123456, 789)
    assert value.tzinfo is UTC
    assert encode(value) == "~t2015-01-02T03:04:05.123456789Z"


@pytest.mark.parametrize(
    ("text", "micro", "nano", "formatted"),
    [
        ("2015-01-02T03:04:05Z", 0, 0, "2015-01-02T03:04:05Z"),
        ("2015-01-02T03:04:05.1Z", 100000, 0, "2015-01-02T03:04:05.1Z"),
        ("2015-01-02T03:04:05.120Z", 120000, 0, "2015-01-02T03:04:05.12Z"),
        ("2015-01-02T03:04:05.000001Z", 1, 0, "2015-01-02T03:04:05.000001Z"),
        ("2015-01-02T03:04:05.0000001Z", 0, 100, "2015-01-02T03:04:05.0000001Z"),
        ("2015-01-02T03:04:05.000000001Z", 0, 1, "2015-01-02T03:04:05.000000001Z"),
        ("9999-12-31T23:59:59.999999999Z", 999999, 999, "9999-12-31T23:59:59.999999999Z"),
        ("0001-01-01T00:00:00Z", 0, 0, "0001-01-01T00:00:00Z"),
    ],
)
def test_datetime_fractions(text: str, micro: int, nano: int, formatted: str) -> None:
    value = parse_datetime(text)
    assert isinstance(value, Datetime)
    assert (value.microsecond, value.nanosecond) == (micro, nano)
    assert format_datetime(value) == formatted
    assert decode("~t" + formatted) == value


@pytest.mark.parametrize(
    "bad",
    [
        "~t2015-13-01",
        "~t2015-02-30",
        "~t0000-01-01",
        "~t2015-01-02T03:04:05",  # no Z
        "~t2015-01-02T03:04:05+01:00",
        "~t2015-01-02T03:04:05.1234567890Z",  # 10 fraction digits
        "~t2015-01-02T03:04:05.Z",
        "~t2015-01-02T24:00:00Z",
        "~t2015-01-02T03:04:60Z",
        "~t2015-13-02T03:04:05Z",  # whole-second forms go through the fast path: it must be as strict
        "~t2015-01-32T03:04:05Z",
        "~t2015-01-02T24:04:05Z",
        "~t2015-01-02T03:04:5xZ",
        "~t2015-01-02T03:04:+5Z",
        "~t2015-01-02t03:04:05Z",
        "~t2015-01-02T03:04:05z",
        "~t2015/01/02T03:04:05Z",
        "~t2015-01-02T03:04:0\u0665Z",  # a non-ASCII digit
        "~t+015-01-02T03:04:05Z",
        "~t2015-1-2",
        "~t",
        "~t2015-01-02 ",
        "~t\u0662\u0660\u0661\u0665-01-01",  # Arabic-Indic digits are not transit digits
        "~fabc",
        "~f",
        "~fNaN",
        "~fInfinity",
        "~f-inf",
        "~f 1.5",
        "~f1_000",
        "~f\u0661\u0662",
        "~f1.5 ",
        "~unot-a-uuid",
        "~u531a379e31bb4ce18690158dceb64be6",
        f"~u{{{UUID_TEXT}}}",
        f"~uurn:uuid:{UUID_TEXT}",
        "~bA",
        "~b!!!!",
        "~bAAECAwQ",  # missing padding
        "~dnan",
        "~dinf",
        "~dxyz",
    ],
)
def test_bad_values_stay_plain_strings(bad: str) -> None:
    assert decode(bad) == bad
    assert type(decode(bad)) is str


@pytest.mark.parametrize("plain", ["~x", "~Abc", "~ hello", "~", "", "a~f1", "~1", "~T2015-01-01", "~F1.0"])
def test_unknown_tags_are_plain_strings(plain: str) -> None:
    assert decode(plain) == plain
    assert encode(plain) == plain


# -- the two readings of ~~ -------------------------------------------------------------------------


def test_tilde_escape_client_reading() -> None:
    assert decode("~~abc") == "~abc"
    assert decode("~~f1.5") == "~f1.5"
    assert decode("~~~") == "~~"
    assert decode("~~") == "~"
    for text in ["~abc", "~f1.5", "~t2015-01-01", "~:x", "~~", "~~f1", "~r", "~u", "~b", "~d1", "~"]:
        assert decode(encode(text)) == text
    assert encode("~f1.5") == "~~f1.5"
    assert encode("~~x") == "~~~x"
    assert encode("~abc") == "~abc"  # an unknown tag needs no escape


def test_tilde_escape_documented_reading() -> None:
    assert decode("~~abc", tilde_escape=False) == "~~abc"
    assert decode("~~f1.5", tilde_escape=False) == "~~f1.5"
    assert encode("~abc", tilde_escape=False) == "~abc"
    assert encode("~f1.5", tilde_escape=False) == "~f1.5"
    assert decode({"a": ["~~x", "~f1"]}, tilde_escape=False) == {"a": ["~~x", Decimal(1)]}


# -- nesting and encoding -------------------------------------------------------------------------


def test_nested_values() -> None:
    wire = {
        "_id": "a",
        "list": ["~f1.0", ["~:x:y", {"d": "~t2020-01-01"}], 1, None, True, 2.5],
        "dict": {"u": f"~u{UUID_TEXT}", "~f1": "key not decoded"},
    }
    typed = decode(wire)
    assert typed == {
        "_id": "a",
        "list": [Decimal("1.0"), [NI("x:y"), {"d": dt.date(2020, 1, 1)}], 1, None, True, 2.5],
        "dict": {"u": uuid.UUID(UUID_TEXT), "~f1": "key not decoded"},
    }
    assert encode(typed) == wire


@pytest.mark.parametrize(
    ("typed", "wire"),
    [
        (Decimal("1.50"), "~f1.50"),
        (Decimal("-1E+3"), "~f-1E+3"),
        (dt.date(99, 1, 2), "~t0099-01-02"),
        (dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC), "~t2020-01-02T03:04:05Z"),
        (dt.datetime(2020, 1, 2, 3, 4, 5), "~t2020-01-02T03:04:05Z"),  # naive: taken as UTC
        (dt.datetime(2020, 1, 2, 4, 4, 5, 10, tzinfo=dt.timezone(dt.timedelta(hours=1))),
         "~t2020-01-02T03:04:05.00001Z"),
        (Datetime(2020, 1, 2, nanosecond=5), "~t2020-01-02T00:00:00.000000005Z"),
        (NI("a:b"), "~:a:b"),
        (URI("urn:x"), "~rurn:x"),
        (uuid.UUID(UUID_TEXT), f"~u{UUID_TEXT}"),
        (b"\x00\xff", "~bAP8="),
        (bytearray(b"ab"), "~bYWI="),
        (memoryview(b"ab"), "~bYWI="),
        ((1, "x"), [1, "x"]),
        (True, True),
        (None, None),
        (10**40, 10**40),
        (1.25, 1.25),
    ],
)
def test_encode(typed: object, wire: object) -> None:
    assert encode(typed) == wire


def test_encode_rejects_unknown_types() -> None:
    with pytest.raises(TypeError):
        encode(object())
    with pytest.raises(TypeError):
        encode({"a": {1, 2}})


def test_encode_subclasses() -> None:
    class MyStr(str):
        pass

    class MyInt(int):
        pass

    assert encode(MyStr("~fx")) == "~~fx"
    assert type(encode(MyInt(3))) is int


# -- the typed values themselves ----------------------------------------------------------------------


def test_ni_parts() -> None:
    assert NI("foo:x:y").namespace == "foo"
    assert NI("foo:x:y").identifier == "x:y"
    assert NI("bar").namespace is None
    assert NI("bar").identifier == "bar"
    assert NI.of("foo", "x:y") == NI("foo:x:y")
    assert NI.of(None, "bar") == NI("bar")


def test_tagged_equality_and_order() -> None:
    assert NI("a") != URI("a")
    assert NI("a") != "a"
    assert hash(NI("a")) != hash(URI("a"))
    assert NI("a") < NI("b")
    assert sorted([URI("b"), URI("a")]) == [URI("a"), URI("b")]
    with pytest.raises(TypeError):
        NI("a") < URI("b")  # noqa: B015
    with pytest.raises(TypeError):
        NI(1)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        NI("a").value = "b"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(NI("a:b"))) == NI("a:b")


def test_datetime_nanosecond_semantics() -> None:
    a = Datetime(2020, 1, 1, 0, 0, 0, 5, nanosecond=1)
    b = Datetime(2020, 1, 1, 0, 0, 0, 5, nanosecond=2)
    plain = dt.datetime(2020, 1, 1, 0, 0, 0, 5, tzinfo=UTC)
    assert a != b
    assert a < b
    assert b > a
    assert a <= b
    assert b >= a
    assert plain < a
    assert a > plain
    assert a != plain
    assert Datetime(2020, 1, 1, 0, 0, 0, 5) == plain
    assert hash(Datetime(2020, 1, 1, 0, 0, 0, 5)) == hash(plain)  # equal values hash equal
    assert len({a, b, Datetime(2020, 1, 1, 0, 0, 0, 5, nanosecond=1)}) == 2
    with pytest.raises(ValueError):
        Datetime(2020, 1, 1, nanosecond=1000)


def test_datetime_conversions() -> None:
    value = Datetime(2020, 1, 2, 3, 4, 5, 6, nanosecond=7)
    assert value.epoch_ns == Datetime.from_epoch_ns(value.epoch_ns).epoch_ns
    assert Datetime.from_epoch_ns(value.epoch_ns) == value
    assert Datetime.from_epoch_ns(-1) == Datetime(1969, 12, 31, 23, 59, 59, 999999, nanosecond=999)
    assert Datetime(1970, 1, 1).epoch_ns == 0
    assert Datetime.from_datetime(value) == value
    assert value.replace(year=2021) == Datetime(2021, 1, 2, 3, 4, 5, 6, nanosecond=7)
    assert value.replace(nanosecond=0).nanosecond == 0
    assert pickle.loads(pickle.dumps(value)) == value
    assert repr(value) == "Datetime('2020-01-02T03:04:05.000006007Z')"


def test_datetime_from_another_zone_keeps_nanoseconds() -> None:
    plus_one = dt.timezone(dt.timedelta(hours=1))
    value = Datetime(2020, 1, 2, 4, 4, 5, 6, tzinfo=plus_one, nanosecond=7)
    utc = Datetime.from_datetime(value)
    assert utc == Datetime(2020, 1, 2, 3, 4, 5, 6, nanosecond=7)
    assert utc.tzinfo is UTC
    assert encode(value) == "~t2020-01-02T03:04:05.000006007Z"
    naive = Datetime.from_datetime(dt.datetime(2020, 1, 2, 3))
    assert naive == Datetime(2020, 1, 2, 3)


@pytest.mark.parametrize("text", ["2015-01-02T03:04:05Z", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
                                  "2024-02-29T12:00:00Z", "0001-01-01T00:00:00Z"])
def test_whole_second_datetimes_parse_as_the_general_form_does(text: str) -> None:
    fast = decode("~t" + text)
    general = decode("~t" + text[:-1] + ".0Z")  # the same instant, through the general pattern
    assert type(fast) is Datetime and fast == general and fast.nanosecond == 0
    assert fast.tzinfo is not None and fast.utcoffset() == general.utcoffset()
    assert encode(fast) == "~t" + text
