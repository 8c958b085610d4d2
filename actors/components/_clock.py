"""The frozen clock of DTL's ``now``: node metadata ``frozen_time`` (an ISO-8601 UTC datetime such as
``2020-01-01T00:00:00Z``) makes every ``now`` of every pipe give that instant, for reproducible test output.

The node also takes it from the env variable ``node-frozen-time`` when the metadata does not set it (see
:mod:`sesamd._node`). A pipe is rebuilt when its metadata changes, so a new setting applies to its next run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import storage

from ._registry import ConfigError

__all__ = ["FROZEN_TIME", "FROZEN_TIME_ENV", "frozen_clock"]

FROZEN_TIME = "frozen_time"  # the node metadata key
FROZEN_TIME_ENV = "node-frozen-time"  # the env variable used when the metadata has no frozen_time


def frozen_clock(metadata: Mapping[str, Any], where: str = "") -> Callable[[], int] | None:
    """A clock (epoch nanoseconds) stopped at the metadata's ``frozen_time``; None when it is unset (the
    wall clock). A value that is no UTC datetime is a ConfigError naming the setting."""
    value = metadata.get(FROZEN_TIME)
    if value is None or value == "":
        return None
    instant = _parse(value)
    if instant is None:
        raise ConfigError(f"the node setting {FROZEN_TIME} (metadata, or the env variable {FROZEN_TIME_ENV}) "
                          f"must be a UTC datetime such as \"2020-01-01T00:00:00Z\", not {value!r}", where=where)
    return lambda: instant


def _parse(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = storage.parse_datetime(value[2:] if value.startswith("~t") else value)
    except ValueError:
        return None
    epoch_ns = getattr(parsed, "epoch_ns", None)
    return epoch_ns if isinstance(epoch_ns, int) else None
