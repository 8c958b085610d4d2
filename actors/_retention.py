"""Retention of a pipe's execution log (node-spec 5.7, 2.7): trimmed by time only.

The log keeps fixed ids per event kind, so every logged run adds versions. Versions older than
``compaction.time_threshold_hours_pump`` (the pipe's ``compaction``, else
``global_defaults.compaction_time_threshold_hours_pump``; 720 hours, which is also the least) are removed;
the latest version of every event kind stays.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._datasets import DatasetWrite
from .components import ConfigError, global_defaults

__all__ = ["LOG_RETENTION_HOURS", "log_retention_hours", "trim_log_write"]

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
