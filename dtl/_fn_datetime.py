"""Date and time functions (dtl-spec 6.11): parse, format, cast, arithmetic and timezone shifts.

Datetimes are ``storage.Datetime`` values (UTC, nanosecond precision). Format strings use a fixed token
set (``%d %e %H %I %m %M %p %S %f %y %Y %z %%``, plus English month and weekday names ``%b %B %a %A`` and
the day of the year ``%j``); parsing and formatting are implemented here rather than with ``strptime``
so that the behaviour does not depend on the platform or the locale.
"""

from __future__ import annotations

import datetime as _dt
import re
import time
import zoneinfo
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from storage import parse_datetime

from ._context import Ctx, Evaluator
from ._registry import IGNORE, Call, apply_elementwise, constant, expression, function, is_constant
from ._values import Datetime, first

__all__ = ["format_datetime_text", "parse_datetime_text", "timezone"]

UTC = _dt.UTC
_NS_PER_DAY = 86_400_000_000_000
_MIN_NS = Datetime(1, 1, 1).epoch_ns
_MAX_NS = Datetime(9999, 12, 31, 23, 59, 59, 999999, nanosecond=999).epoch_ns

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class DatetimeFormatError(ValueError):
    """A format string, timezone name or date part that cannot be used."""


# ---------------------------------------------------------------------------------------------------
# timezones
# ---------------------------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def timezone(name: str) -> _dt.tzinfo:
    """The IANA timezone ``name`` (``UTC`` and its aliases are the fixed UTC zone)."""
    if name.upper() in ("UTC", "Z", "ZULU", "UCT", "UNIVERSAL", "ETC/UTC", "GMT"):
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise DatetimeFormatError(f"unknown timezone {name!r}") from exc


def _zone_arg(name: Any) -> _dt.tzinfo:
    if type(name) is not str:
        raise DatetimeFormatError("the timezone must be a string")
    return timezone(name)


def localize(naive: _dt.datetime, zone: _dt.tzinfo) -> _dt.datetime:
    """Attach ``zone`` to a wall-clock time; ambiguous or skipped times resolve to standard time."""
    if zone is UTC:
        return naive.replace(tzinfo=UTC)
    early = naive.replace(tzinfo=zone, fold=0)
    late = naive.replace(tzinfo=zone, fold=1)
    if early.utcoffset() == late.utcoffset() or not early.dst():
        return early
    return late


def _to_utc(wall: _dt.datetime, zone: _dt.tzinfo, nanosecond: int) -> Datetime:
    return Datetime.from_datetime(localize(wall, zone), nanosecond)


# ---------------------------------------------------------------------------------------------------
# format strings
# ---------------------------------------------------------------------------------------------------

_PARSE_PATTERNS = {
    "d": r"(?P<d>\d{1,2})",
    "e": r" ?(?P<e>\d{1,2})",
    "H": r"(?P<H>\d{1,2})",
    "I": r"(?P<I>\d{1,2})",
    "m": r"(?P<m>\d{1,2})",
    "M": r"(?P<M>\d{1,2})",
    "p": r"(?P<p>[aApP][mM])",
    "S": r"(?P<S>\d{1,2})",
    "f": r"(?P<f>\d{1,9})",
    "y": r"(?P<y>\d{2})",
    "Y": r"(?P<Y>\d{4})",
    "z": r"(?P<z>Z|[+-]\d{2}:?\d{2})",
    "j": r"(?P<j>\d{1,3})",
    "b": r"(?P<b>" + "|".join(m[:3] for m in _MONTHS) + ")",
    "B": r"(?P<B>" + "|".join(_MONTHS) + ")",
    "a": r"(?P<a>" + "|".join(d[:3] for d in _WEEKDAYS) + ")",
    "A": r"(?P<A>" + "|".join(_WEEKDAYS) + ")",
}
_TOKEN_RE = re.compile(r"%(.)|(\s+)|([^%\s]+)|(%)\Z", re.DOTALL)


@lru_cache(maxsize=512)
def _tokens(fmt: str) -> tuple[tuple[str, str], ...]:
    """Split a format string into ``("token", letter)``, ``("space", text)`` and ``("text", text)`` parts
    (cached: formatting a datetime with a constant format tokenizes it once)."""
    parts: list[tuple[str, str]] = []
    for match in _TOKEN_RE.finditer(fmt):
        letter, space, text, trailing = match.groups()
        if trailing is not None:
            raise DatetimeFormatError("the format string ends with a lone '%'")
        if letter is not None:
            if letter == "%":
                parts.append(("text", "%"))
            elif letter in _PARSE_PATTERNS:
                parts.append(("token", letter))
            else:
                raise DatetimeFormatError(f"unsupported format token '%{letter}'")
        elif space is not None:
            parts.append(("space", space))
        else:
            parts.append(("text", text))
    return tuple(parts)


@lru_cache(maxsize=512)
def _parser(fmt: str) -> re.Pattern[str]:
    pieces: list[str] = []
    seen: set[str] = set()
    for kind, text in _tokens(fmt):
        if kind == "token":
            if text in seen:  # a repeated token must match the same text again
                pieces.append(f"(?P={text})")
                continue
            seen.add(text)
            pieces.append(_PARSE_PATTERNS[text])
        elif kind == "space":
            pieces.append(r"\s+")
        else:
            pieces.append(re.escape(text))
    return re.compile("".join(pieces) + r"\Z", re.IGNORECASE)


def parse_datetime_text(text: str, fmt: str, zone: _dt.tzinfo = UTC) -> Datetime | None:
    """Parse ``text`` with the format ``fmt`` as wall-clock time in ``zone``; None if it does not match.

    Fields the format lacks default to 1900-01-01 00:00:00 (as ``strptime``). A ``%z`` offset in the text
    overrides ``zone``. ``%f`` keeps up to nine digits (nanoseconds).
    """
    match = _parser(fmt).match(text)
    if match is None:
        return None
    g = match.groupdict()
    try:
        year = 1900
        if g.get("Y") is not None:
            year = int(g["Y"])
        elif g.get("y") is not None:
            short = int(g["y"])
            year = 2000 + short if short <= 68 else 1900 + short
        month = 1
        if g.get("m") is not None:
            month = int(g["m"])
        elif g.get("B") is not None:
            month = [m.lower() for m in _MONTHS].index(g["B"].lower()) + 1
        elif g.get("b") is not None:
            month = [m[:3].lower() for m in _MONTHS].index(g["b"].lower()) + 1
        day = int(g.get("d") or g.get("e") or 1)
        hour = 0
        if g.get("I") is not None:
            hour = int(g["I"])
            if not 1 <= hour <= 12:
                return None
            hour %= 12
            if (g.get("p") or "am").lower() == "pm":
                hour += 12
        elif g.get("H") is not None:
            hour = int(g["H"])
        minute = int(g.get("M") or 0)
        second = int(g.get("S") or 0)
        fraction = g.get("f")
        nanos = int(fraction.ljust(9, "0")) if fraction else 0
        micro, nano = divmod(nanos, 1000)
        if g.get("j") is not None and g.get("m") is None and g.get("b") is None and g.get("B") is None:
            start = _dt.date(year, 1, 1) + _dt.timedelta(days=int(g["j"]) - 1)
            if start.year != year:
                return None
            month, day = start.month, start.day
        wall = _dt.datetime(year, month, day, hour, minute, second, micro)
        offset = g.get("z")
        if offset is not None:
            if offset.upper() == "Z":
                zone = UTC
            else:
                digits = offset[1:].replace(":", "")
                delta = _dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
                if delta >= _dt.timedelta(hours=24):
                    return None
                zone = _dt.timezone(-delta if offset[0] == "-" else delta)
        return _to_utc(wall, zone, nano)
    except (ValueError, OverflowError):
        return None


def format_datetime_text(value: _dt.datetime, fmt: str, zone: _dt.tzinfo = UTC) -> str:
    """Format ``value`` in ``zone`` with the format ``fmt`` (precision stops at microseconds)."""
    local = value.astimezone(zone)
    out: list[str] = []
    for kind, text in _tokens(fmt):
        if kind != "token":
            out.append(text)
            continue
        if text == "d":
            out.append(f"{local.day:02d}")
        elif text == "e":
            out.append(str(local.day))
        elif text == "H":
            out.append(f"{local.hour:02d}")
        elif text == "I":
            out.append(f"{(local.hour % 12) or 12:02d}")
        elif text == "m":
            out.append(f"{local.month:02d}")
        elif text == "M":
            out.append(f"{local.minute:02d}")
        elif text == "p":
            out.append("pm" if local.hour >= 12 else "am")
        elif text == "S":
            out.append(f"{local.second:02d}")
        elif text == "f":
            out.append(f"{local.microsecond:06d}")
        elif text == "y":
            out.append(f"{local.year % 100:02d}")
        elif text == "Y":
            out.append(f"{local.year:04d}")
        elif text == "z":
            offset = local.utcoffset() or _dt.timedelta(0)
            sign = "-" if offset < _dt.timedelta(0) else "+"
            minutes = abs(int(offset.total_seconds())) // 60
            out.append(f"{sign}{minutes // 60:02d}{minutes % 60:02d}")
        elif text == "j":
            out.append(f"{local.timetuple().tm_yday:03d}")
        elif text == "b":
            out.append(_MONTHS[local.month - 1][:3])
        elif text == "B":
            out.append(_MONTHS[local.month - 1])
        elif text == "a":
            out.append(_WEEKDAYS[local.weekday()][:3])
        else:  # "A"
            out.append(_WEEKDAYS[local.weekday()])
    return "".join(out)


# ---------------------------------------------------------------------------------------------------
# element-wise functions with leading parameters, validated at compile time when constant
# ---------------------------------------------------------------------------------------------------


def _with_params(call: Call, factory: Callable[..., Callable[[Any], Any]]) -> Evaluator:
    """Compile ``[name, PARAM..., VALUES]``: ``factory(*params)`` builds the element function.

    The factory raises ``DatetimeFormatError`` for unusable parameters: a compile error when they are
    constants, a null result when they are computed.
    """
    evaluators = call.compile_all()
    values = evaluators[-1]
    params = evaluators[:-1]
    if all(is_constant(p) for p in params):
        try:
            element = factory(*[p.dtl_constant for p in params])  # type: ignore[attr-defined]
        except DatetimeFormatError as exc:
            raise call.error(str(exc)) from None
        if is_constant(values):
            return constant(apply_elementwise(element, values.dtl_constant))  # type: ignore[attr-defined]
        return lambda c: apply_elementwise(element, values(c))

    def evaluate(c: Ctx) -> Any:
        try:
            element = factory(*[p(c) for p in params])
        except DatetimeFormatError:
            return None
        return apply_elementwise(element, values(c))

    return evaluate


def _format_arg(fmt: Any) -> str:
    if type(fmt) is not str:
        raise DatetimeFormatError("the format must be a string")
    _tokens(fmt)  # validates
    return fmt


def _zone_and_format(args: tuple[Any, ...]) -> tuple[_dt.tzinfo, str]:
    if len(args) == 1:
        return UTC, _format_arg(args[0])
    return _zone_arg(args[0]), _format_arg(args[1])


_YMDHMS = frozenset("YmdHMS")


def _parse_ymdhms(pattern: re.Pattern[str], fmt: str, zone: _dt.tzinfo) -> Callable[[Any], Any]:
    """The element function of ``datetime-parse`` for a format of exactly %Y %m %d %H %M %S (any order).

    The same steps as ``parse_datetime_text`` takes for those fields (no fraction, no offset).
    """

    def parse(value: Any) -> Any:
        if type(value) is not str:
            return IGNORE
        match = pattern.match(value)
        if match is None:
            return IGNORE
        year, month, day, hour, minute, second = match.group("Y", "m", "d", "H", "M", "S")
        if year is None or month is None or hour is None:
            result = parse_datetime_text(value, fmt, zone)
            return IGNORE if result is None else result
        try:
            wall = _dt.datetime(int(year), int(month), int(day or 1), int(hour), int(minute or 0),
                                int(second or 0), 0)
            return _to_utc(wall, zone, 0)
        except (ValueError, OverflowError):
            return IGNORE

    return parse


@expression("datetime-parse", args=(2, 3))
def _datetime_parse(call: Call) -> Evaluator:
    def factory(*args: Any) -> Callable[[Any], Any]:
        zone, fmt = _zone_and_format(args)
        pattern = _parser(fmt)
        if set(pattern.groupindex) == _YMDHMS:
            return _parse_ymdhms(pattern, fmt, zone)

        def parse(value: Any) -> Any:
            if type(value) is not str:
                return IGNORE
            result = parse_datetime_text(value, fmt, zone)
            return IGNORE if result is None else result

        return parse

    return _with_params(call, factory)


@expression("datetime-format", args=(2, 3))
def _datetime_format(call: Call) -> Evaluator:
    def factory(*args: Any) -> Callable[[Any], Any]:
        zone, fmt = _zone_and_format(args)

        def format_one(value: Any) -> Any:
            if not isinstance(value, _dt.datetime):
                return IGNORE
            try:
                return format_datetime_text(value, fmt, zone)
            except (ValueError, OverflowError):
                return IGNORE

        return format_one

    return _with_params(call, factory)


@expression("datetime-shift", args=3)
def _datetime_shift(call: Call) -> Evaluator:
    def factory(from_name: Any, to_name: Any) -> Callable[[Any], Any]:
        from_zone = _zone_arg(from_name)
        to_zone = _zone_arg(to_name)

        def shift(value: Any) -> Any:
            if not isinstance(value, _dt.datetime):
                return IGNORE
            try:
                wall = _dt.datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                                    value.microsecond)
                instant = localize(wall, from_zone).astimezone(to_zone).replace(tzinfo=None)
                return Datetime.from_datetime(instant, getattr(value, "nanosecond", 0))
            except (ValueError, OverflowError):
                return IGNORE

        return shift

    return _with_params(call, factory)


# ---------------------------------------------------------------------------------------------------
# datetime cast, is-datetime, now
# ---------------------------------------------------------------------------------------------------

_ISO_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(Z|[+-]\d{2}(?::?\d{2})?)?\Z",
    re.ASCII | re.IGNORECASE,
)


def parse_iso(text: str) -> Datetime | None:
    """An ISO-8601 datetime (``Z``, a numeric offset or none for UTC) or date (midnight UTC); else None."""
    try:
        value = parse_datetime(text)
    except ValueError:
        value = None
    else:
        if isinstance(value, Datetime):
            return value
        return Datetime(value.year, value.month, value.day)
    match = _ISO_RE.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    nanos = int(fraction.ljust(9, "0")) if fraction else 0
    micro, nano = divmod(nanos, 1000)
    zone: _dt.tzinfo = UTC
    if offset and offset.upper() != "Z":
        digits = offset[1:].replace(":", "").ljust(4, "0")
        delta = _dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if delta >= _dt.timedelta(hours=24):
            return None
        zone = _dt.timezone(-delta if offset[0] == "-" else delta)
    try:
        wall = _dt.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro,
                            tzinfo=zone)
        return Datetime.from_datetime(wall, nano)
    except (ValueError, OverflowError):
        return None


def to_datetime(value: Any) -> Any:
    """The ``datetime`` cast of one value: datetimes, ISO strings and epoch nanoseconds; else IGNORE."""
    if isinstance(value, Datetime):
        return value
    kind = type(value)
    if kind is int:
        if not _MIN_NS <= value <= _MAX_NS:
            return IGNORE
        return Datetime.from_epoch_ns(value)
    if kind is str:
        parsed = parse_iso(value)
        return IGNORE if parsed is None else parsed
    if isinstance(value, _dt.datetime):
        return Datetime.from_datetime(value)
    if isinstance(value, _dt.date):
        return Datetime(value.year, value.month, value.day)
    return IGNORE


# ``datetime`` is a cast, but registered by hand: the shared ``cast`` decorator is equivalent, this keeps
# the module independent of the order in which the families are loaded.
@expression("datetime", args=(1, 2))
def _datetime(call: Call) -> Evaluator:
    if len(call.args) == 1:
        values = call.compile(0)
        if is_constant(values):
            return constant(apply_elementwise(to_datetime, values.dtl_constant))  # type: ignore[attr-defined]
        return lambda c: apply_elementwise(to_datetime, values(c))
    default = call.compile(0)
    values = call.compile(1)

    def replace(c: Ctx, value: Any) -> Any:
        result = to_datetime(value)
        if result is IGNORE and value is not None:
            saved = c.u
            c.u = value
            result = default(c)
            c.u = saved
        return result

    def evaluate(c: Ctx) -> Any:
        value = values(c)
        if type(value) is list:
            return [r for r in (replace(c, v) for v in value) if r is not IGNORE]
        if value is None:
            return None
        result = replace(c, value)
        return None if result is IGNORE else result

    return evaluate


@function("is-datetime", args=1)
def _is_datetime(value: Any) -> bool:
    """True when the value (or the first element of a list) is a datetime; an ISO string is not."""
    return isinstance(first(value), _dt.datetime)


@expression("now", args=0)
def _now(call: Call) -> Evaluator:
    """The current UTC datetime from the evaluation's clock (``Env.clock``), else the wall clock; never
    folded at compile time."""

    def evaluate(c: Ctx) -> Datetime:
        clock = c.env.clock
        return Datetime.from_epoch_ns(clock() if clock is not None else time.time_ns())

    return evaluate


# ---------------------------------------------------------------------------------------------------
# datetime-plus and datetime-diff
# ---------------------------------------------------------------------------------------------------

_UNIT_NS = {
    "week": 7 * _NS_PER_DAY,
    "day": _NS_PER_DAY,
    "hour": 3_600_000_000_000,
    "minute": 60_000_000_000,
    "second": 1_000_000_000,
    "millisecond": 1_000_000,
    "microsecond": 1_000,
    "nanosecond": 1,
}
PARTS = ("year", "month", *_UNIT_NS)


def _part_arg(part: Any) -> str:
    if type(part) is not str or part not in PARTS:
        raise DatetimeFormatError(f"the date part must be one of {', '.join(PARTS)}")
    return part


def _days_in_month(year: int, month: int) -> int:
    following = _dt.date(year + month // 12, month % 12 + 1, 1)
    return (following - _dt.timedelta(days=1)).day


def add_months(value: Datetime, months: int) -> Datetime:
    """``value`` plus ``months`` calendar months; the day is clamped to the length of the target month."""
    index = value.year * 12 + value.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    if not 1 <= year <= 9999:
        raise OverflowError("year out of range")
    day = min(value.day, _days_in_month(year, month))
    return Datetime(year, month, day, value.hour, value.minute, value.second, value.microsecond,
                    nanosecond=value.nanosecond)


def add_part(value: Datetime, part: str, amount: int) -> Datetime:
    """``value`` plus ``amount`` units of ``part`` (exact for every part but year and month)."""
    if part == "year":
        return add_months(value, 12 * amount)
    if part == "month":
        return add_months(value, amount)
    ns = value.epoch_ns + amount * _UNIT_NS[part]
    if not _MIN_NS <= ns <= _MAX_NS:
        raise OverflowError("datetime out of range")
    return Datetime.from_epoch_ns(ns)


@expression("datetime-plus", args=3)
def _datetime_plus(call: Call) -> Evaluator:
    def factory(part: Any, amount: Any) -> Callable[[Any], Any]:
        part = _part_arg(part)
        amount = first(amount)
        if type(amount) is not int:
            raise DatetimeFormatError("the amount must be an integer")

        def plus(value: Any) -> Any:
            if not isinstance(value, _dt.datetime):
                return IGNORE
            if not isinstance(value, Datetime):
                value = Datetime.from_datetime(value)
            try:
                return add_part(value, part, amount)
            except (ValueError, OverflowError):
                return IGNORE

        return plus

    return _with_params(call, factory)


def _rest(value: Datetime) -> tuple[int, ...]:
    return (value.day, value.hour, value.minute, value.second, value.microsecond, value.nanosecond)


def _months_between(later: Datetime, earlier: Datetime) -> int:
    """Whole calendar months from ``earlier`` to ``later`` (``later >= earlier``)."""
    months = (later.year - earlier.year) * 12 + later.month - earlier.month
    if _rest(later) < _rest(earlier):
        months -= 1
    return months


def diff_parts(part: str, start: Datetime, end: Datetime) -> int:
    """``start - end`` in whole ``part`` units, truncated toward zero."""
    if part in ("year", "month"):
        months = _months_between(start, end) if start >= end else -_months_between(end, start)
        if part == "month":
            return months
        return months // 12 if months >= 0 else -(-months // 12)
    delta = start.epoch_ns - end.epoch_ns
    unit = _UNIT_NS[part]
    return delta // unit if delta >= 0 else -(-delta // unit)


def _as_datetime(value: Any) -> Datetime | None:
    value = first(value)
    if isinstance(value, Datetime):
        return value
    if isinstance(value, _dt.datetime):
        return Datetime.from_datetime(value)
    return None


@expression("datetime-diff", args=3)
def _datetime_diff(call: Call) -> Evaluator:
    part_of, start_of, end_of = call.compile_all()
    if is_constant(part_of):
        try:
            part = _part_arg(part_of.dtl_constant)  # type: ignore[attr-defined]
        except DatetimeFormatError as exc:
            raise call.error(str(exc), 0) from None
        part_of = constant(part)

    def evaluate(c: Ctx) -> Any:
        part = part_of(c)
        start = _as_datetime(start_of(c))
        end = _as_datetime(end_of(c))
        if start is None or end is None or type(part) is not str or part not in PARTS:
            return None
        return diff_parts(part, start, end)

    return evaluate
