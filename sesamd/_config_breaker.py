"""The config-upload circuit breaker (node-spec 2.8, P3).

With ``global_defaults.use_config_circuit_breaker`` true in the node metadata in force when a config
arrives, a config that would delete more than 10 % of the node's components (its pipes and systems), when
that is also more than 10 of them, is refused and nothing changes. The metadata in force arms it, not the
upload's: an upload that leaves the metadata out, or turns the setting off, is still checked. To delete
that many on purpose, upload the setting off first, then the smaller config.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from actors.components import global_defaults

__all__ = ["SETTING", "ConfigCircuitBreakerTripped", "check_config_deletions"]

SETTING = "use_config_circuit_breaker"
SHARE = 0.10  # of the components there are now
COUNT = 10


class ConfigCircuitBreakerTripped(Exception):
    """A config refused for deleting too many components; ``deleted`` names them (sorted)."""

    def __init__(self, deleted: list[str], components: int) -> None:
        self.deleted, self.components = deleted, components
        super().__init__(
            f"the config would delete {len(deleted)} of the node's {components} pipes and systems (more than "
            f"{SHARE:.0%} and more than {COUNT}), and the node metadata sets global_defaults.{SETTING}: upload "
            f"the metadata with it off first to delete them")


def check_config_deletions(current: Iterable[Mapping[str, Any]], uploaded: Iterable[Any],
                           metadata: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigCircuitBreakerTripped` when the breaker is on in ``metadata`` (the node's now) and
    replacing ``current`` (the stored entities) by ``uploaded`` deletes too many components."""
    if global_defaults(metadata).get(SETTING) is not True:
        return
    components = [e["_id"] for e in current if e.get("type") != "metadata"]
    kept = {e.get("_id") for e in uploaded if isinstance(e, Mapping)}
    deleted = sorted(c for c in components if c not in kept)
    if len(deleted) > COUNT and len(deleted) > SHARE * len(components):
        raise ConfigCircuitBreakerTripped(deleted, len(components))
