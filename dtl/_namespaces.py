"""Namespaced identifiers (dtl-spec section 9): property-name resolution and namespace-aware patterns."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Namespaces", "wildcard_matcher"]


def wildcard_regex(pattern: str) -> re.Pattern[str]:
    """``*`` matches any run of characters, ``?`` one character; the whole text must match."""
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts) + r"\Z", re.DOTALL)


def wildcard_matcher(pattern: str) -> Callable[[str], bool]:
    """A predicate for a whole-name wildcard pattern."""
    if "*" not in pattern and "?" not in pattern:
        return pattern.__eq__
    if pattern == "*":
        return lambda name: True
    regex = wildcard_regex(pattern)
    return lambda name: regex.match(name) is not None


def split_name(name: str) -> tuple[str | None, str]:
    """``"ns:id"`` -> ``("ns", "id")`` at the LAST colon; ``"id"`` -> ``(None, "id")``."""
    ns, sep, ident = name.rpartition(":")
    return (ns, ident) if sep else (None, name)


@dataclass(frozen=True)
class Namespaces:
    """The pipe's namespace settings (all off by default)."""

    enabled: bool = False
    identity: str | None = None
    property: str | None = None
    pipe_id: str | None = None

    @classmethod
    def from_pipe(cls, pipe: Mapping[str, Any] | None) -> Namespaces:
        if not pipe:
            return cls()
        pipe_id = pipe.get("id") or pipe.get("_id")
        namespaces = pipe.get("namespaces") or {}
        return cls(
            enabled=bool(pipe.get("namespaced_identifiers", False)),
            identity=namespaces.get("identity", pipe_id),
            property=namespaces.get("property", pipe_id),
            pipe_id=pipe_id,
        )

    # -- add / add-if / default --------------------------------------------------------------------

    def target_name(self, name: str) -> str:
        """The target property name ``add`` writes for PROPERTY."""
        if not self.enabled:
            return name
        if name.startswith("::"):
            return name[2:]
        if name.startswith(":"):
            return self._qualify(name[1:])
        if ":" in name or name.startswith(("_", "$")):
            return name
        return self._qualify(name)

    def _qualify(self, name: str) -> str:
        return name if self.property is None else f"{self.property}:{name}"

    def identity_value(self, value: Any) -> Any:
        """``_id`` values get the identity namespace (strings, also inside a list)."""
        if not self.enabled or self.identity is None:
            return value
        prefix = self.identity + ":"
        if type(value) is str:
            return value if value.startswith(prefix) else prefix + value
        if type(value) is list:
            return [self.identity_value(v) for v in value]
        return value

    # -- copy / remove / rename / make-ni ----------------------------------------------------------

    def name_matcher(self, pattern: str) -> Callable[[str], bool]:
        """A predicate on property names for a (wildcard) pattern, namespace-aware when enabled."""
        if not self.enabled:
            return wildcard_matcher(pattern)
        if pattern.startswith("::"):
            return wildcard_matcher(pattern[2:])
        if pattern.startswith(":"):
            return wildcard_matcher(self._qualify(pattern[1:]))
        ns_pattern, id_pattern = split_name(pattern)
        match_id = wildcard_matcher(id_pattern)
        if ns_pattern is None:
            if pattern == "*":
                return lambda name: True
            return lambda name: match_id(name.rpartition(":")[2])
        match_ns = wildcard_matcher(ns_pattern)

        def matches(name: str) -> bool:
            ns, sep, ident = name.rpartition(":")
            return bool(sep) and match_ns(ns) and match_id(ident)

        return matches

    def is_qualified(self, name: str) -> bool:
        """Whether a TO name is used as written (rather than keeping each source namespace)."""
        return name.startswith(":") or ":" in name

    def renamed(self, source_name: str, to: str) -> str:
        """The target name for ``source_name`` renamed to ``to`` (keeps the namespace when ``to`` is bare)."""
        if not self.enabled:
            return to
        if to.startswith("::"):
            return to[2:]
        if to.startswith(":"):
            return self._qualify(to[1:])
        if ":" in to:
            return to
        ns, sep, _ = source_name.rpartition(":")
        return f"{ns}:{to}" if sep else to
