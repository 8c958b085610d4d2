"""Retention of a pipe's execution log (node-spec 5.7, 2.7): trimmed by time only.

The log keeps fixed ids per event kind, so every logged run adds versions. Versions older than
``compaction.time_threshold_hours_pump`` (the pipe's ``compaction``, else
``global_defaults.compaction_time_threshold_hours_pump``; 720 hours, which is also the least) are removed;
the latest version of every event kind stays.

:func:`compaction_settings` reads the rest of a pipe's ``compaction`` (how the node compacts its sink
dataset: :mod:`sesamd._compaction`), each setting defaulted by ``global_defaults.compaction_<name>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import storage

from ._datasets import DatasetWrite
from .components import ConfigError, global_defaults

__all__ = ["LOG_RETENTION_HOURS", "CompactionSettings", "compaction_settings", "config_number", "log_retention_hours",
           "trim_log_write"]

LOG_RETENTION_HOURS = 720  # the default, and the least a pipe may set


def log_retention_hours(config: Mapping[str, Any], metadata: Mapping[str, Any], pipe_id: str) -> int:
    """How long the pipe's execution log keeps versions, in hours; a bad value is a ConfigError."""
    compaction = config.get("compaction")
    if compaction is not None and not isinstance(compaction, Mapping):
        raise ConfigError("must be an object", where=f"pipe {pipe_id}: compaction")
    value = (compaction or {}).get("time_threshold_hours_pump")
    where = f"pipe {pipe_id}: compaction.time_threshold_hours_pump"
    if value is None:
        value = global_defaults(metadata).get("compaction_time_threshold_hours_pump")
        where = "node metadata: global_defaults.compaction_time_threshold_hours_pump"
    if value is None:
        return LOG_RETENTION_HOURS
    if type(value) is not int or value < 1:
        raise ConfigError(f"must be a whole number of hours, not {value!r}", where=where)
    return max(value, LOG_RETENTION_HOURS)


def trim_log_write(execution_dataset: str, cutoff_us: int) -> DatasetWrite:
    """The write that removes the log's versions older than ``cutoff_us`` (the latest of each id stays);
    it returns how many it removed."""
    return DatasetWrite(execution_dataset, lambda dataset: dataset.compact(keep_versions=1, older_than_us=cutoff_us))


@dataclass(frozen=True)
class CompactionSettings:
    """A pipe's ``compaction`` settings for its sink dataset (node-spec 2.7)."""

    keep_versions: int = 2
    time_threshold_hours: float | None = None
    automatic: bool = True
    growth_threshold: float = 1.0


def compaction_settings(config: Mapping[str, Any], metadata: Mapping[str, Any], pipe_id: str) -> CompactionSettings:
    """The pipe's ``compaction.keep_versions``, ``time_threshold_hours``, ``automatic`` and
    ``growth_threshold``, each else ``global_defaults.compaction_<name>``; a bad value is a ConfigError."""
    compaction = config.get("compaction")
    if compaction is not None and not isinstance(compaction, Mapping):
        raise ConfigError("must be an object", where=f"pipe {pipe_id}: compaction")
    defaults = global_defaults(metadata)
    found: dict[str, Any] = {}
    where: dict[str, str] = {}
    for name in ("keep_versions", "time_threshold_hours", "automatic", "growth_threshold"):
        value, place = (compaction or {}).get(name), f"pipe {pipe_id}: compaction.{name}"
        if value is None:
            value, place = defaults.get(f"compaction_{name}"), f"node metadata: global_defaults.compaction_{name}"
        if value is not None:
            found[name], where[name] = value, place
    checks = {
        "keep_versions": (lambda v: v if type(v) is int and v >= 0 else None, "an integer >= 0"),
        "time_threshold_hours": (lambda v: n if (n := config_number(v)) is not None and n > 0 else None,
                                 "a number of hours > 0"),
        "automatic": (lambda v: v if type(v) is bool else None, "true or false"),
        "growth_threshold": (lambda v: n if (n := config_number(v)) is not None and n >= 1 else None,
                             "a number >= 1.0"),
    }
    for name, value in found.items():
        valid, wanted = checks[name]
        checked = valid(value)
        if checked is None:
            raise ConfigError(f"must be {wanted}, not {value!r}", where=where[name])
        found[name] = checked
    settings = CompactionSettings(**found)
    if settings.keep_versions == 0 and settings.time_threshold_hours is None:
        raise ConfigError("0 needs a time threshold (compaction.time_threshold_hours)", where=where["keep_versions"])
    return settings


def config_number(value: Any) -> float | None:
    """A number of the config (fractions are kept as transit decimals, ``"~f0.5"``) as a float, else None."""
    if isinstance(value, str) and value.startswith("~f"):
        try:
            value = storage.decode(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    number = float(value)
    return number if number == number and number not in (float("inf"), float("-inf")) else None
