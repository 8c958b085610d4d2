"""Date and time functions: datetime-parse, datetime-format, datetime, datetime-plus, datetime-diff,
datetime-shift, is-datetime and now."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import pytest

from dtl import DTLCompileError, compile_expression
from dtl._fn_datetime import add_months, diff_parts, format_datetime_text, parse_datetime_text, timezone
from storage import Datetime, decode


def ev(expr: Any, source: Any = None) -> Any:
    return compile_expression(expr).evaluate(source)


def t(text: str) -> Datetime:
    """A datetime from its transit text (``"2015-07-28T09:46:00Z"``)."""
    value = decode("~t" + text, tilde_escape=False)
    assert isinstance(value, Datetime)
    return value


def parse(fmt: str, text: str) -> list[Any]:
    return ["datetime-parse", fmt, text]


# -- datetime-parse --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (parse("%Y-%m-%dT%H:%M:%S.%fZ", "2015-07-28T09:46:00.12345Z"), t("2015-07-28T09:46:00.12345Z")),
        (parse("%Y-%m-%dT%H:%M:%S%z", "2015-07-28T09:46:00+0200"), t("2015-07-28T07:46:00Z")),
        (parse("%Y-%m-%dT%H:%M:%S%z", "2015-07-28T09:46:00-02:30"), t("2015-07-28T12:16:00Z")),
        (parse("%d.%m.%Y", "28.07.2015"), t("2015-07-28T00:00:00Z")),
        (["datetime-parse", "%d.%m.%Y", ["list", "28.07.2015", "01.01.1970"]],
         [t("2015-07-28T00:00:00Z"), t("1970-01-01T00:00:00Z")]),
        (["datetime-parse", "Europe/Oslo", "%Y-%m-%dT%H:%M:%S", "2018-08-18T12:39:01"], t("2018-08-18T10:39:01Z")),
        (["datetime-parse", "Europe/Oslo", "%Y-%m-%d %H:%M", "2018-01-18 12:39"], t("2018-01-18T11:39:00Z")),
        (["datetime-parse", "America/New_York", "%Y-%m-%d", "2018-01-18"], t("2018-01-18T05:00:00Z")),
        (parse("%Y-%m-%d", "not a date"), None),
        (parse("%Y-%m-%d", "2015-02-30"), None),  # no such day
        (parse("%Y-%m-%d", "2015-01-02 trailing"), None),  # the whole string must match
        (["datetime-parse", "%Y-%m-%d", ["list", "2015-01-02", 12, "bad", None]], [t("2015-01-02T00:00:00Z")]),
        (["datetime-parse", "%Y-%m-%d", None], None),
        (["datetime-parse", "%Y-%m-%d", ["list"]], []),
    ],
)
def test_datetime_parse(expr: list[Any], expected: Any) -> None:
    assert ev(expr) == expected


@pytest.mark.parametrize(
    ("fmt", "text", "expected"),
    [
        ("%e/%m/%Y", "5/07/2015", "2015-07-05T00:00:00Z"),
        ("%d/%m/%Y", "5/7/2015", "2015-07-05T00:00:00Z"),
        ("%I:%M %p", "01:30 pm", "1900-01-01T13:30:00Z"),  # missing fields default to 1900-01-01
        ("%I:%M %p", "12:05 am", "1900-01-01T00:05:00Z"),
        ("%I:%M %p", "12:05 PM", "1900-01-01T12:05:00Z"),
        ("%y-%m-%d", "68-01-01", "2068-01-01T00:00:00Z"),
        ("%y-%m-%d", "69-01-01", "1969-01-01T00:00:00Z"),
        ("%y-%m-%d", "00-01-01", "2000-01-01T00:00:00Z"),
        ("%Y-%m-%d %H:%M:%S.%f", "2015-07-28 09:46:00.000001", "2015-07-28T09:46:00.000001Z"),
        ("%Y-%m-%d %H:%M:%S.%f", "2015-07-28 09:46:00.123456789", "2015-07-28T09:46:00.123456789Z"),
        ("%Y%%%m", "2015%07", "2015-07-01T00:00:00Z"),
        ("%d %b %Y", "05 Jul 2015", "2015-07-05T00:00:00Z"),
        ("%A %d %B %Y", "Sunday 05 July 2015", "2015-07-05T00:00:00Z"),
        ("%Y-%j", "2016-060", "2016-02-29T00:00:00Z"),
        ("%Y-%m-%d  %H", "2015-07-28 \t 09", "2015-07-28T09:00:00Z"),  # whitespace matches any whitespace
        ("%Y-%m-%dT%H:%M:%SZ", "2015-07-28T09:46:00Z", "2015-07-28T09:46:00Z"),
    ],
)
def test_datetime_parse_tokens(fmt: str, text: str, expected: str) -> None:
    assert ev(["datetime-parse", fmt, text]) == t(expected)


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("%H:%M", "24:00"),
        ("%I:%M %p", "13:00 pm"),
        ("%I:%M %p", "00:00 am"),
        ("%Y-%m-%d", "2015-13-01"),
        ("%Y-%m-%dT%H:%M:%S%z", "2015-07-28T09:46:00+2400"),
        ("%Y", "15"),
        ("%Y-%j", "2015-366"),
    ],
)
def test_datetime_parse_out_of_range_is_ignored(fmt: str, text: str) -> None:
    assert ev(["datetime-parse", fmt, text]) is None


def test_datetime_parse_timezone_is_ignored_when_the_text_has_an_offset() -> None:
    assert ev(["datetime-parse", "Europe/Oslo", "%Y-%m-%d %H:%M%z", "2018-08-18 12:00+0000"]) == t(
        "2018-08-18T12:00:00Z")


def test_datetime_parse_dst_edges_resolve_to_standard_time() -> None:
    # 02:30 on 2018-03-25 does not exist in Oslo (clocks jump 02:00 -> 03:00): read as standard time (+01:00)
    assert parse_datetime_text("2018-03-25 02:30", "%Y-%m-%d %H:%M", timezone("Europe/Oslo")) == t(
        "2018-03-25T01:30:00Z")
    # 02:30 on 2018-10-28 happens twice: the standard-time (second) reading is used
    assert parse_datetime_text("2018-10-28 02:30", "%Y-%m-%d %H:%M", timezone("Europe/Oslo")) == t(
        "2018-10-28T01:30:00Z")


def test_datetime_parse_with_computed_format_and_timezone() -> None:
    expr = ["datetime-parse", "_S.tz", "_S.fmt", "_S.value"]
    source = {"tz": "Europe/Oslo", "fmt": "%Y-%m-%d %H:%M", "value": "2018-08-18 12:00"}
    assert ev(expr, source) == t("2018-08-18T10:00:00Z")
    # unusable computed parameters give null rather than an error
    assert ev(expr, {**source, "tz": "Not/A_Zone"}) is None
    assert ev(expr, {**source, "fmt": 12}) is None
    assert ev(expr, {**source, "fmt": "%Q"}) is None


@pytest.mark.parametrize(
    "expr",
    [
        ["datetime-parse", "Not/A_Zone", "%Y", "2015"],
        ["datetime-parse", "%Q", "2015"],
        ["datetime-parse", "%Y%", "2015"],
        ["datetime-parse", 12, "2015"],
        ["datetime-format", "Mars/Olympus", "%Y", "~t2015-01-01T00:00:00Z"],
        ["datetime-shift", "UTC", "Nowhere", "~t2015-01-01T00:00:00Z"],
        ["datetime-parse"],
        ["datetime-parse", "%Y"],
    ],
)
def test_invalid_constant_arguments_are_compile_errors(expr: list[Any]) -> None:
    with pytest.raises(DTLCompileError):
        compile_expression(expr)


# -- datetime-format -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["datetime-format", "%Y-%m-%dT%H:%M:%SZ", parse("%Y-%m-%d", "2015-07-28")], "2015-07-28T00:00:00Z"),
        (["datetime-format", "%Y-%m-%d %H:%M:%S", parse("%Y-%m-%dT%H:%M:%S", "2018-08-18T12:39:01")],
         "2018-08-18 12:39:01"),
        (["datetime-format", "Europe/Oslo", "%Y-%m-%d %H:%M:%S", parse("%Y-%m-%dT%H:%M:%S", "2018-08-18T12:39:01")],
         "2018-08-18 14:39:01"),
        (["datetime-format", "Europe/Oslo", "%Y-%m-%d %H:%M:%S",
          ["datetime-parse", "Europe/Oslo", "%Y-%m-%dT%H:%M:%S", "2018-08-18T12:39:01"]], "2018-08-18 12:39:01"),
        (["datetime-format", "%Y", ["list", "2015-01-01", 12, "~t2015-07-28T09:46:00Z"]], ["2015"]),
        (["datetime-format", "%Y", "2015-01-01"], None),
        (["datetime-format", "%Y", None], None),
        (["datetime-format", "%Y-%m-%dT%H:%M:%S.%fZ", "~t2015-07-28T09:46:00.123456789Z"],
         "2015-07-28T09:46:00.123456Z"),  # precision stops at microseconds
        (["datetime-format", "%z", "~t2015-07-28T09:46:00Z"], "+0000"),
        (["datetime-format", "America/St_Johns", "%H:%M %z", "~t2015-01-28T09:46:00Z"], "06:16 -0330"),
        (["datetime-format", "100%% %Y", "~t2015-07-28T09:46:00Z"], "100% 2015"),
    ],
)
def test_datetime_format(expr: list[Any], expected: Any) -> None:
    assert ev(expr) == expected


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("%d|%e|%H|%I|%p|%M|%S|%f", "05|5|21|09|pm|04|05|120000"),
        ("%m|%y|%Y|%j", "07|15|2015|186"),
        ("%a %A %b %B", "Sun Sunday Jul July"),
    ],
)
def test_datetime_format_tokens(fmt: str, expected: str) -> None:
    assert format_datetime_text(t("2015-07-05T21:04:05.12Z"), fmt) == expected


def test_datetime_format_twelve_hour_clock_at_midnight_and_noon() -> None:
    assert format_datetime_text(t("2015-07-05T00:30:00Z"), "%I %p") == "12 am"
    assert format_datetime_text(t("2015-07-05T12:30:00Z"), "%I %p") == "12 pm"


def test_datetime_format_short_and_small_years() -> None:
    assert format_datetime_text(t("1969-07-05T00:00:00Z"), "%y") == "69"
    assert format_datetime_text(t("2068-07-05T00:00:00Z"), "%y") == "68"
    assert format_datetime_text(t("0012-07-05T00:00:00Z"), "%Y %y") == "0012 12"


def test_datetime_format_and_parse_roundtrip() -> None:
    fmt = "%Y-%m-%d %H:%M:%S.%f %z"
    value = t("2016-02-29T23:59:58.000321Z")
    for zone in ("UTC", "Europe/Oslo", "Asia/Kolkata", "America/Los_Angeles"):
        text = format_datetime_text(value, fmt, timezone(zone))
        assert parse_datetime_text(text, fmt) == value


# -- datetime (cast) -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["datetime", "2015-07-28T09:46:00.12345Z"], t("2015-07-28T09:46:00.12345Z")),
        (["datetime", 1438076760123450000], t("2015-07-28T09:46:00.12345Z")),
        (["datetime", 1], t("1970-01-01T00:00:00.000000001Z")),
        (["datetime", -1], t("1969-12-31T23:59:59.999999999Z")),
        (["datetime", 0], t("1970-01-01T00:00:00Z")),
        (["datetime", "~t2001-02-03T04:05:06Z"], t("2001-02-03T04:05:06Z")),
        (["datetime", "2015-07-28"], t("2015-07-28T00:00:00Z")),
        (["datetime", "2015-07-28T09:46:00+02:00"], t("2015-07-28T07:46:00Z")),
        (["datetime", "2015-07-28T09:46:00.5-0100"], t("2015-07-28T10:46:00.5Z")),
        (["datetime", "2015-07-28T09:46"], t("2015-07-28T09:46:00Z")),
        (["datetime", "2015-07-28T09:46:00.123456789Z"], t("2015-07-28T09:46:00.123456789Z")),
        (["datetime", "hello"], None),
        (["datetime", "2015-02-30T00:00:00Z"], None),
        (["datetime", True], None),
        (["datetime", 1.5], None),
        (["datetime", 10**30], None),  # out of the year 1-9999 range
        (["datetime", None], None),
        (["datetime", ["list", 0, "hello", None, "2015-07-28T09:46:00Z"]],
         [t("1970-01-01T00:00:00Z"), t("2015-07-28T09:46:00Z")]),
        (["datetime", "_S.missing"], None),
    ],
)
def test_datetime_cast(expr: list[Any], expected: Any) -> None:
    assert ev(expr) == expected


def test_datetime_cast_keeps_nanoseconds() -> None:
    value = ev(["datetime", 1438076760123456789])
    assert isinstance(value, Datetime)
    assert value.epoch_ns == 1438076760123456789
    assert value.nanosecond == 789


def test_datetime_cast_of_a_list_of_nows() -> None:
    values = ev(["datetime", ["list", ["now"], ["now"], "hello"]])
    assert len(values) == 2
    assert all(isinstance(v, Datetime) for v in values)


def test_datetime_cast_default_expression() -> None:
    assert ev(["datetime", "~t2000-01-01T00:00:00Z", "hello"]) == t("2000-01-01T00:00:00Z")
    assert isinstance(ev(["datetime", ["now"], "hello"]), Datetime)
    # the default sees the unconvertible value as _
    assert ev(["datetime", ["concat", "bad:", "_."], ["list", "x", 0]]) == ["bad:x", t("1970-01-01T00:00:00Z")]
    # it is not used for null
    assert ev(["datetime", "~t2000-01-01T00:00:00Z", None]) is None
    assert ev(["datetime", "~t2000-01-01T00:00:00Z", "_S.x"], {"x": 12}) == t("1970-01-01T00:00:00.000000012Z")


# -- is-datetime and now ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["is-datetime", ["now"]], True),
        (["is-datetime", ["datetime", "2015-07-28T09:46:00.12345Z"]], True),
        (["is-datetime", "2015-07-28T09:46:00.12345Z"], False),
        (["is-datetime", ["list", "1", 2]], False),
        (["is-datetime", "~t2015-07-28T09:46:00Z"], True),
        (["is-datetime", ["list", "~t2015-07-28T09:46:00Z", "x"]], True),
        (["is-datetime", ["list", "x", "~t2015-07-28T09:46:00Z"]], False),
        (["is-datetime", None], False),
        (["is-datetime", ["list"]], False),
    ],
)
def test_is_datetime(expr: list[Any], expected: bool) -> None:
    assert ev(expr) is expected


def test_now_is_the_current_utc_time_and_not_folded() -> None:
    expression = compile_expression(["now"])
    before = _dt.datetime.now(_dt.UTC) - _dt.timedelta(seconds=1)
    first = expression.evaluate()
    second = expression.evaluate()
    after = _dt.datetime.now(_dt.UTC) + _dt.timedelta(seconds=1)
    assert isinstance(first, Datetime)
    assert first.utcoffset() == _dt.timedelta(0)
    assert before <= first <= second <= after


def test_now_takes_no_arguments() -> None:
    with pytest.raises(DTLCompileError):
        compile_expression(["now", 1])


# -- datetime-plus ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["datetime-plus", "day", 1, parse("%Y-%m-%d", "2015-07-28")], t("2015-07-29T00:00:00Z")),
        (["datetime-plus", "hour", -1, parse("%Y-%m-%d", "2016-03-01")], t("2016-02-29T23:00:00Z")),
        (["datetime-plus", "year", 1, ["list", parse("%Y-%m-%d", "1971-01-01"), parse("%Y-%m-%d", "1950-06-01")]],
         [t("1972-01-01T00:00:00Z"), t("1951-06-01T00:00:00Z")]),
        (["datetime-plus", "month", 1, "~t2015-01-31T10:00:00Z"], t("2015-02-28T10:00:00Z")),
        (["datetime-plus", "month", 13, "~t2015-01-31T10:00:00Z"], t("2016-02-29T10:00:00Z")),
        (["datetime-plus", "month", -2, "~t2015-01-15T00:00:00Z"], t("2014-11-15T00:00:00Z")),
        (["datetime-plus", "year", 1, "~t2016-02-29T00:00:00Z"], t("2017-02-28T00:00:00Z")),
        (["datetime-plus", "week", 2, "~t2015-12-25T00:00:00Z"], t("2016-01-08T00:00:00Z")),
        (["datetime-plus", "minute", 90, "~t2015-12-31T23:00:00Z"], t("2016-01-01T00:30:00Z")),
        (["datetime-plus", "second", -1, "~t2015-01-01T00:00:00Z"], t("2014-12-31T23:59:59Z")),
        (["datetime-plus", "millisecond", 1, "~t2015-01-01T00:00:00Z"], t("2015-01-01T00:00:00.001Z")),
        (["datetime-plus", "microsecond", 1, "~t2015-01-01T00:00:00Z"], t("2015-01-01T00:00:00.000001Z")),
        (["datetime-plus", "nanosecond", 1, "~t2015-01-01T00:00:00.999999999Z"], t("2015-01-01T00:00:01Z")),
        (["datetime-plus", "nanosecond", -1, "~t2015-01-01T00:00:00Z"], t("2014-12-31T23:59:59.999999999Z")),
        (["datetime-plus", "day", 1, "~t2015-01-01T00:00:00.000000007Z"], t("2015-01-02T00:00:00.000000007Z")),
        (["datetime-plus", "month", 1, "~t2015-01-01T00:00:00.000000007Z"], t("2015-02-01T00:00:00.000000007Z")),
        (["datetime-plus", "day", 1, ["list", "2015-01-01", 5, "~t2015-01-01T00:00:00Z"]],
         [t("2015-01-02T00:00:00Z")]),
        (["datetime-plus", "day", 1, "2015-01-01"], None),
        (["datetime-plus", "day", 1, None], None),
        (["datetime-plus", "year", 1, "~t9999-06-01T00:00:00Z"], None),  # out of range is ignored
        (["datetime-plus", "day", -1, "~t0001-01-01T00:00:00Z"], None),
    ],
)
def test_datetime_plus(expr: list[Any], expected: Any) -> None:
    assert ev(expr) == expected


def test_datetime_plus_computed_amount() -> None:
    expr = ["datetime-plus", "day", "_S.n", "_S.when"]
    assert ev(expr, {"n": 3, "when": t("2015-01-01T00:00:00Z")}) == t("2015-01-04T00:00:00Z")
    assert ev(expr, {"n": [3], "when": t("2015-01-01T00:00:00Z")}) == t("2015-01-04T00:00:00Z")
    assert ev(expr, {"n": "3", "when": t("2015-01-01T00:00:00Z")}) is None
    assert ev(["datetime-plus", "_S.part", 1, "_S.when"], {"part": "fortnight", "when": t("2015-01-01T00:00:00Z")}) \
        is None


@pytest.mark.parametrize(
    "expr",
    [
        ["datetime-plus", "fortnight", 1, "~t2015-01-01T00:00:00Z"],
        ["datetime-plus", "day", 1.5, "~t2015-01-01T00:00:00Z"],
        ["datetime-plus", "day", True, "~t2015-01-01T00:00:00Z"],
        ["datetime-plus", "day", "~t2015-01-01T00:00:00Z"],
    ],
)
def test_datetime_plus_invalid_constant_arguments(expr: list[Any]) -> None:
    with pytest.raises(DTLCompileError):
        compile_expression(expr)


def test_add_months_clamps_the_day() -> None:
    assert add_months(t("2015-03-31T01:02:03Z"), -1) == t("2015-02-28T01:02:03Z")
    assert add_months(t("2015-12-15T00:00:00Z"), 1) == t("2016-01-15T00:00:00Z")


# -- datetime-diff ---------------------------------------------------------------------------------


def diff(part: str, start: str, end: str) -> list[Any]:
    return ["datetime-diff", part, parse("%Y-%m-%d", start), parse("%Y-%m-%d", end)]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (diff("day", "2015-07-28", "2015-07-29"), -1),
        (diff("day", "2015-07-29", "2015-07-28"), 1),
        (diff("year", "2015-03-02", "2016-07-29"), -1),
        (diff("month", "2015-03-02", "2016-07-29"), -16),
        (diff("month", "2016-07-29", "2015-03-02"), 16),
        (diff("week", "2015-07-09", "2015-07-01"), 1),
        (diff("week", "2015-07-01", "2015-07-09"), -1),
        (diff("week", "2015-07-01", "2015-07-07"), 0),
        (diff("year", "2016-01-15", "2015-02-15"), 0),
        (diff("year", "2015-02-15", "2016-01-15"), 0),
        (diff("year", "2016-02-15", "2015-02-15"), 1),
        (diff("month", "2015-02-14", "2015-01-15"), 0),
        (diff("month", "2015-02-15", "2015-01-15"), 1),
        (diff("hour", "2015-07-29", "2015-07-28"), 24),
        (diff("minute", "2015-07-28", "2015-07-29"), -1440),
        (diff("second", "2015-07-29", "2015-07-28"), 86400),
        (diff("millisecond", "2015-07-29", "2015-07-28"), 86_400_000),
        (diff("microsecond", "2015-07-29", "2015-07-28"), 86_400_000_000),
        (diff("nanosecond", "2015-07-28", "2015-07-29"), -86_400_000_000_000),
        (["datetime-diff", "second", "~t2015-01-01T00:00:01.9Z", "~t2015-01-01T00:00:00Z"], 1),
        (["datetime-diff", "second", "~t2015-01-01T00:00:00Z", "~t2015-01-01T00:00:01.9Z"], -1),
        (["datetime-diff", "month", "~t2015-02-01T00:00:00Z", "~t2015-01-01T00:00:00.000000001Z"], 0),
        (["datetime-diff", "nanosecond", "~t2015-01-01T00:00:00.000000003Z", "~t2015-01-01T00:00:00Z"], 3),
        (["datetime-diff", "day", ["list", "~t2015-01-03T00:00:00Z", "x"], "~t2015-01-01T00:00:00Z"], 2),
        (["datetime-diff", "day", "2015-01-03", "~t2015-01-01T00:00:00Z"], None),
        (["datetime-diff", "day", None, "~t2015-01-01T00:00:00Z"], None),
        (["datetime-diff", "day", "~t2015-01-01T00:00:00Z", "_S.missing"], None),
        (["datetime-diff", "_S.part", "~t2015-01-03T00:00:00Z", "~t2015-01-01T00:00:00Z"], None),
    ],
)
def test_datetime_diff(expr: list[Any], expected: Any) -> None:
    assert ev(expr) == expected


def test_datetime_diff_computed_part() -> None:
    expr = ["datetime-diff", "_S.part", "~t2015-01-03T00:00:00Z", "~t2015-01-01T00:00:00Z"]
    assert ev(expr, {"part": "hour"}) == 48
    assert ev(expr, {"part": "eon"}) is None


def test_datetime_diff_invalid_constant_part() -> None:
    with pytest.raises(DTLCompileError):
        compile_expression(["datetime-diff", "eon", "~t2015-01-03T00:00:00Z", "~t2015-01-01T00:00:00Z"])


def test_diff_parts_is_the_inverse_of_plus_for_months() -> None:
    start = t("2015-01-31T12:00:00Z")
    for months in range(-30, 31):
        later = add_months(start, months)
        assert abs(diff_parts("month", later, start)) <= abs(months)


# -- datetime-shift --------------------------------------------------------------------------------


def hm(text: str) -> list[Any]:
    return parse("%Y/%m/%d %H:%M", text)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["datetime-shift", "Europe/Oslo", "UTC", hm("2015/07/28 09:46")], t("2015-07-28T07:46:00Z")),
        (["datetime-shift", "UTC", "Europe/Oslo", hm("2015/07/28 09:46")], t("2015-07-28T11:46:00Z")),
        (["datetime-shift", "Europe/Oslo", "UTC", ["list", hm("2015/07/28 09:46"), hm("2015/07/28 04:46")]],
         [t("2015-07-28T07:46:00Z"), t("2015-07-28T02:46:00Z")]),
        (["datetime-shift", "Europe/Oslo", "UTC", hm("2015/01/28 09:46")], t("2015-01-28T08:46:00Z")),
        (["datetime-shift", "America/New_York", "Europe/Oslo", hm("2015/07/28 09:46")], t("2015-07-28T15:46:00Z")),
        (["datetime-shift", "UTC", "UTC", "~t2015-07-28T09:46:00.123456789Z"], t("2015-07-28T09:46:00.123456789Z")),
        (["datetime-shift", "Europe/Oslo", "UTC", "~t2015-07-28T09:46:00.000000001Z"],
         t("2015-07-28T07:46:00.000000001Z")),
        (["datetime-shift", "Europe/Oslo", "UTC", ["list", "2015-07-28", 1]], []),
        (["datetime-shift", "Europe/Oslo", "UTC", "2015-07-28"], None),
        (["datetime-shift", "Europe/Oslo", "UTC", None], None),
    ],
)
def test_datetime_shift(expr: list[Any], expected: Any) -> None:
    assert ev(expr) == expected


def test_datetime_shift_computed_timezones() -> None:
    expr = ["datetime-shift", "_S.from", "_S.to", "~t2015-07-28T09:46:00Z"]
    assert ev(expr, {"from": "Europe/Oslo", "to": "UTC"}) == t("2015-07-28T07:46:00Z")
    assert ev(expr, {"from": "Europe/Oslo", "to": "Atlantis"}) is None
    assert ev(expr, {"from": 1, "to": "UTC"}) is None
