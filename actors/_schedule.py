"""Pump schedules (sans-IO): ``schedule_interval``, ``cron_expression`` (UTC) and the default intervals.

Cron dialect (node spec 5.2): minute, hour, day-of-month, month, day-of-week and an optional sixth field,
the year. ``?`` means ``*`` in the day fields; ``L`` is the last day of the month, and ``<n>L`` in the
day-of-week field is the last such weekday of the month with the spec's numbering (``6L`` = last Friday).
``W`` and ``#`` are rejected. Evaluation is delegated to croniter.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from croniter import croniter

__all__ = [
    "DATASET_INTERVAL",
    "DEFAULT_INTERVAL",
    "PERSIST_THRESHOLD",
    "Schedule",
    "ScheduleError",
    "check_rescans",
    "cron_to_croniter",
    "default_interval",
    "next_cron_time",
    "schedule_for",
]

DATASET_INTERVAL = (30.0, 1.5)  # seconds, jitter: dataset source and dataset sink
DEFAULT_INTERVAL = (900.0, 45.0)  # every other pipe
PERSIST_THRESHOLD = 3600.0  # intervals longer than this (and cron) persist the next run

_DOW_NAMES = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_LAST_WEEKDAY = re.compile(r"^(?:([1-7])|(SUN|MON|TUE|WED|THU|FRI|SAT))L$", re.IGNORECASE)
_DOW_NAME = re.compile("|".join(_DOW_NAMES))


class ScheduleError(ValueError):
    """An invalid ``schedule_interval`` or ``cron_expression``."""


def cron_to_croniter(expression: str) -> str:
    """Translate a Sesam cron expression into croniter syntax; raises :class:`ScheduleError`."""
    if not isinstance(expression, str):
        raise ScheduleError("cron_expression must be a string")
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise ScheduleError(f"cron_expression {expression!r} must have 5 or 6 fields, not {len(fields)}")
    if "#" in expression:
        raise ScheduleError(f"cron_expression {expression!r}: '#' is not supported")
    out = list(fields[:5])
    for index, field in enumerate(out):
        if "?" in field:
            if index not in (2, 4) or field != "?":
                raise ScheduleError(f"cron_expression {expression!r}: '?' is only allowed alone in the day fields")
            out[index] = "*"
    if "W" in out[2].upper():
        raise ScheduleError(f"cron_expression {expression!r}: 'W' is not supported")
    out[4] = ",".join(_translate_dow(part, expression) for part in out[4].split(","))
    if len(fields) == 6:
        out += ["0", fields[5]]  # croniter's 7-field form: ... second year
    translated = " ".join(out)
    try:
        croniter(translated, datetime(2000, 1, 1, tzinfo=UTC))
    except Exception as exc:  # croniter raises several error types (and KeyError/ValueError)
        raise ScheduleError(f"invalid cron_expression {expression!r}: {exc}") from None
    return translated


def _translate_dow(part: str, expression: str) -> str:
    match = _LAST_WEEKDAY.match(part)
    if match is None:
        if "L" in _DOW_NAME.sub("", part.upper()):
            raise ScheduleError(f"cron_expression {expression!r}: unsupported day-of-week {part!r}")
        return part
    number = int(match.group(1)) if match.group(1) else _DOW_NAMES[match.group(2).upper()]
    return f"L{number - 1}"


def next_cron_time(expression: str, after: datetime) -> datetime | None:
    """The first time strictly after ``after`` (UTC) matching ``expression``; None if there is none."""
    translated = cron_to_croniter(expression)
    if after.tzinfo is None:
        after = after.replace(tzinfo=UTC)
    try:
        result = croniter(translated, after.astimezone(UTC)).get_next(datetime)
    except Exception:  # no match within croniter's search window (e.g. a year in the past)
        return None
    return result.astimezone(UTC)


def _is_dataset(component: Any, default: bool) -> bool:
    if component is None:
        return default
    return isinstance(component, Mapping) and component.get("type") == "dataset"


def default_interval(pipe_config: Mapping[str, Any]) -> tuple[float, float]:
    """(interval, jitter): 30 s ± 1.5 s for a dataset source and dataset sink, else 900 s ± 45 s."""
    if _is_dataset(pipe_config.get("source"), False) and _is_dataset(pipe_config.get("sink"), True):
        return DATASET_INTERVAL
    return DEFAULT_INTERVAL


@dataclass(frozen=True)
class Schedule:
    """When a pump runs: a cron expression, or an interval with jitter."""

    interval: float | None = None
    jitter: float = 0.0
    cron: str | None = None  # as configured (Sesam dialect)
    explicit: bool = False  # schedule_interval or cron_expression was configured

    @property
    def persistent(self) -> bool:
        """Whether the next run survives a node restart (cron, or an interval over an hour)."""
        return self.cron is not None or (self.interval or 0.0) > PERSIST_THRESHOLD

    def next_run(self, after: datetime, rng: random.Random | None = None) -> datetime | None:
        """The next start after ``after``; None when a cron expression never matches again."""
        if self.cron is not None:
            return next_cron_time(self.cron, after)
        assert self.interval is not None
        jitter = (rng or random).uniform(-self.jitter, self.jitter) if self.jitter else 0.0
        return after + timedelta(seconds=max(self.interval + jitter, 0.0))

    def describe(self) -> dict[str, Any]:
        """The ``schedule_interval``/``cron_expression`` fields shown on the pump."""
        return {"schedule_interval": None if self.cron is not None else self.interval,
                "cron_expression": self.cron}


def schedule_for(pipe_config: Mapping[str, Any]) -> Schedule:
    """The schedule of a pipe from its effective config; cron wins over an interval. Raises ScheduleError."""
    pump = pipe_config.get("pump") or {}
    cron = pump.get("cron_expression")
    if cron is not None:
        cron_to_croniter(cron)
        return Schedule(cron=cron, explicit=True)
    interval = pump.get("schedule_interval")
    if isinstance(interval, str) and interval.startswith("~f"):  # config keeps fractions as transit decimals
        try:
            interval = Decimal(interval[2:])
        except ArithmeticError:
            pass
    if interval is not None:
        if isinstance(interval, bool) or not isinstance(interval, (int, float, Decimal)) or interval <= 0:
            raise ScheduleError(f"schedule_interval must be a positive number of seconds, not {interval!r}")
        return Schedule(interval=float(interval), explicit=True)
    value, jitter = default_interval(pipe_config)
    return Schedule(interval=value, jitter=jitter)


def check_rescans(pump: Mapping[str, Any]) -> None:
    """Validate the rescan properties of a pump config (node-spec 5.1); raises ScheduleError."""
    for key in ("rescan_run_count", "partial_rescan_run_count", "partial_rescan_delta"):
        value = pump.get(key)
        if key in pump and (type(value) is not int or value < 1):
            raise ScheduleError(f"{key} must be an integer >= 1, not {value!r}")
    if "rescan_run_count" in pump and "rescan_cron_expression" in pump:
        raise ScheduleError("rescan_run_count and rescan_cron_expression exclude each other")
    if "partial_rescan_run_count" in pump and "partial_rescan_delta" not in pump:
        raise ScheduleError("partial_rescan_run_count needs partial_rescan_delta")
    expression = pump.get("rescan_cron_expression")
    if expression is not None:
        if not isinstance(expression, str):
            raise ScheduleError(f"rescan_cron_expression must be a string, not {expression!r}")
        cron_to_croniter(expression)
