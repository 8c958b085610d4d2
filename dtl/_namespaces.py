"""Namespaced identifiers (dtl-spec section 9): property-name resolution and namespace-aware patterns."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Namespaces", "add_namespaces", "apply_namespaces", "remove_namespaces", "strip_namespaces",
           "wildcard_matcher"]


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


# ---------------------------------------------------------------------------------------------------
# namespaces of whole entities: apply-ns / strip-ns and the pipe's add_namespaces / remove_namespaces
# ---------------------------------------------------------------------------------------------------


def apply_namespaces(value: Any, prop: str | None, ident: str | None, *, skip_underscore: bool = True,
                     skip_dollar: bool = True, recursive: bool = True, root: bool = True) -> Any:
    """Prefix keys with ``prop:`` and the root ``_id`` value with ``ident:`` (DTL ``apply-ns``).

    Keys that already carry the namespace are left as they are; skipped ``_``/``$`` keys keep their value.
    """
    if type(value) is list:
        if not recursive and not root:
            return value
        return [apply_namespaces(v, prop, ident, skip_underscore=skip_underscore, skip_dollar=skip_dollar,
                                 recursive=recursive, root=root) for v in value]
    if type(value) is not dict:
        return value
    out = {}
    prefix = f"{prop}:" if prop else None
    for key, item in value.items():
        if root and key == "_id" and ident and type(item) is str and not item.startswith(ident + ":"):
            item = f"{ident}:{item}"
        if (skip_underscore and key.startswith("_")) or (skip_dollar and key.startswith("$")):
            out[key] = item
            continue
        if recursive:
            item = apply_namespaces(item, prop, ident, skip_underscore=skip_underscore, skip_dollar=skip_dollar,
                                    recursive=recursive, root=False)
        out[key if prefix is None or key.startswith(prefix) else prefix + key] = item
    return out


def strip_namespaces(value: Any) -> Any:
    """Remove the namespace (up to the last colon) from every key, recursively (DTL ``strip-ns``)."""
    if type(value) is list:
        return [strip_namespaces(v) for v in value]
    if type(value) is dict:
        return {k.rpartition(":")[2]: strip_namespaces(v) for k, v in value.items()}
    return value


def add_namespaces(entity: dict[str, Any], pipe: Mapping[str, Any] | None) -> dict[str, Any]:
    """The pipe's ``add_namespaces``: the identity namespace on ``_id``, the property namespace on keys."""
    ns = Namespaces.from_pipe(pipe)
    return apply_namespaces(entity, ns.property, ns.identity)  # type: ignore[no-any-return]


def remove_namespaces(entity: dict[str, Any]) -> dict[str, Any]:
    """The pipe's ``remove_namespaces``: bare keys, ``_id`` without its namespace, NIs as bare identifiers.

    ``$`` properties (``$ids``, ``$children``...) are left as they are.
    """
    from ._values import NI

    def strip(value: Any, root: bool) -> Any:
        kind = type(value)
        if kind is NI:
            return value.identifier
        if kind is list:
            return [strip(v, False) for v in value]
        if kind is dict:
            out = {}
            for key, item in value.items():
                if root and key == "_id" and type(item) is str:
                    out[key] = item.partition(":")[2] or item
                elif key.startswith("$"):
                    out[key] = item
                else:
                    out[key.rpartition(":")[2]] = strip(item, False)
            return out
        return value

    return strip(entity, True)  # type: ignore[no-any-return]
