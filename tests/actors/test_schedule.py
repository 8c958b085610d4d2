"""Pump schedules: default intervals with jitter, schedule_interval, the UTC cron dialect, persistence."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

import storage
from actors._schedule import (
    Schedule,
    ScheduleError,
    cron_to_croniter,
    default_interval,
    next_cron_time,
    schedule_for,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday


def pipe(source: str = "dataset", sink: str | None = "dataset", **pump: object) -> dict[str, object]:
    config: dict[str, object] = {"_id": "p", "source": {"type": source}, "pump": pump}
    if sink is not None:
        config["sink"] = {"type": sink}
    return config


def test_default_interval_is_30s_for_dataset_to_dataset_and_900s_otherwise() -> None:
    assert default_interval(pipe()) == (30.0, 1.5)
    assert default_interval(pipe(sink=None)) == (30.0, 1.5)  # the default sink is a dataset sink
    assert default_interval(pipe(source="json")) == (900.0, 45.0)
    assert default_interval(pipe(sink="json")) == (900.0, 45.0)


def test_default_schedule_jitters_within_bounds() -> None:
    schedule = schedule_for(pipe())
    assert not schedule.explicit and not schedule.persistent
    rng = random.Random(7)
    gaps = [(schedule.next_run(T0, rng) - T0).total_seconds() for _ in range(200)]
    assert all(28.5 <= gap <= 31.5 for gap in gaps)
    assert max(gaps) - min(gaps) > 1.0  # really jittered
    slow = schedule_for(pipe(source="sql"))
    assert all(855 <= (slow.next_run(T0, rng) - T0).total_seconds() <= 945 for _ in range(50))


def test_schedule_interval_is_exact_and_cron_wins() -> None:
    schedule = schedule_for(pipe(schedule_interval=60))
    assert schedule == Schedule(interval=60.0, explicit=True)
    assert schedule.next_run(T0) == T0 + timedelta(seconds=60)
    assert schedule.describe() == {"schedule_interval": 60.0, "cron_expression": None}
    assert schedule_for(pipe(schedule_interval=Decimal("0.5"))).interval == 0.5
    both = schedule_for(pipe(schedule_interval=60, cron_expression="0 * * * *"))
    assert both.cron == "0 * * * *" and both.interval is None
    assert both.describe() == {"schedule_interval": None, "cron_expression": "0 * * * *"}


@pytest.mark.parametrize("bad", [0, -5, "60", True])
def test_invalid_schedule_interval(bad: object) -> None:
    with pytest.raises(ScheduleError):
        schedule_for(pipe(schedule_interval=bad))


def test_persistent_schedules_are_cron_and_intervals_over_an_hour() -> None:
    assert schedule_for(pipe(cron_expression="0 3 * * *")).persistent
    assert schedule_for(pipe(schedule_interval=7200)).persistent
    assert not schedule_for(pipe(schedule_interval=3600)).persistent


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/5 * * * *", T0, T0 + timedelta(minutes=5)),
        ("0 12 * * *", T0 + timedelta(hours=13), datetime(2024, 1, 2, 12, tzinfo=UTC)),
        ("0 12 ? * 6L", T0, datetime(2024, 1, 26, 12, tzinfo=UTC)),  # last Friday (spec example)
        ("0 12 * * FRIL", T0, datetime(2024, 1, 26, 12, tzinfo=UTC)),
        ("0 0 L * ?", T0, datetime(2024, 1, 31, tzinfo=UTC)),
        ("30 6 * JAN-MAR MON-FRI", T0, datetime(2024, 1, 1, 6, 30, tzinfo=UTC)),
        ("0 0 1 1 * 2026", T0, datetime(2026, 1, 1, tzinfo=UTC)),  # the sixth field is the year
        ("0 0 * * 0", T0, datetime(2024, 1, 7, tzinfo=UTC)),  # Sunday is 0
    ],
)
def test_cron_next_times_in_utc(expression: str, after: datetime, expected: datetime) -> None:
    assert next_cron_time(expression, after) == expected


def test_cron_is_evaluated_in_utc_whatever_the_input_zone() -> None:
    from datetime import timezone

    oslo = timezone(timedelta(hours=1))
    after = datetime(2024, 1, 1, 13, 0, tzinfo=oslo)  # 12:00 UTC
    assert next_cron_time("0 13 * * *", after) == datetime(2024, 1, 1, 13, tzinfo=UTC)
    assert next_cron_time("0 13 * * *", datetime(2024, 1, 1, 12)) == datetime(2024, 1, 1, 13, tzinfo=UTC)


def test_cron_that_never_matches_again() -> None:
    assert next_cron_time("0 0 * * * 2001", T0) is None
    assert schedule_for(pipe(cron_expression="0 0 * * * 2001")).next_run(T0) is None


@pytest.mark.parametrize(
    "bad",
    ["* * * *", "* * * * * * *", "0 12 15W * *", "0 12 * * 5#2", "x * * * *", "? * * * *", "61 * * * *", 5],
)
def test_invalid_cron_expressions(bad: object) -> None:
    with pytest.raises(ScheduleError):
        cron_to_croniter(bad)  # type: ignore[arg-type]
    with pytest.raises(ScheduleError):
        schedule_for(pipe(cron_expression=bad))


def test_cron_translation() -> None:
    assert cron_to_croniter("0 12 ? * 6L") == "0 12 * * L5"
    assert cron_to_croniter("*/15 * * * * 2025") == "*/15 * * * * 0 2025"
    assert cron_to_croniter("0 12 * * WED") == "0 12 * * WED"  # a W inside a day name is fine


def test_a_fractional_interval_from_parsed_config_is_a_decimal() -> None:
    schedule = schedule_for({"_id": "p", "source": {"type": "embedded"}, "pump": {"schedule_interval": "~f1.5"}})
    assert schedule.interval == 1.5 and schedule.explicit


@pytest.mark.parametrize("pump", [{"schedule_interval": -5}, {"schedule_interval": 0},
                                  {"cron_expression": "61 * * * *"}, {"cron_expression": "every day"},
                                  {"rescan_run_count": 0}])
def test_a_schedule_that_can_never_run_is_a_config_error_of_the_pipe(pump: dict, tmp_path: Any) -> None:
    from actors import Datasets, build_runner
    from actors.components import ConfigError

    config = {"_id": "p", "type": "pipe", "source": {"type": "embedded", "entities": []}, "pump": pump}
    with pytest.raises(ConfigError, match=r"pipe p: pump: .*(schedule_interval|cron_expression|rescan_run_count)"):
        build_runner(config, Datasets(storage.DataDir(tmp_path)))
