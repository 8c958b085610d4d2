"""Namespaced identifiers: ``ni``, ``ni-ns``, ``ni-id`` and ``is-ni`` (dtl-spec 6.14, 9).

``apply-ns`` and ``strip-ns`` (namespaces of keys) live with the dictionary functions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ._context import Ctx, Evaluator
from ._fn_casts import type_predicate
from ._namespaces import Namespaces
from ._registry import IGNORE, Call, apply_elementwise, constant, elementwise, expression, is_constant
from ._values import NI, URI

__all__ = ["DECLARED_NAMESPACES", "collapse_uri", "ni_id", "ni_ns"]

DECLARED_NAMESPACES: dict[str, str] = {"_": "http://example.org/"}
"""The declared namespaces (name -> URI prefix) that ``ni`` collapses URIs into; the docs' default."""

_NO_NAMESPACE: Any = object()
"""The NAMESPACE argument of a one-argument ``ni`` call (the global namespace; URIs are collapsed)."""

_generated: dict[str, dict[str, str]] = {}
"""Per pipe id: URI prefix -> generated namespace ``<pipe-id>-<n>``, stable for the life of the process."""
_generated_lock = threading.Lock()


def _split_uri(text: str) -> tuple[str, str]:
    """``http://x/a/b`` -> ``("http://x/a/", "b")``: the prefix ends at the last ``/``, ``#`` or ``:``."""
    cut = max(text.rfind("/"), text.rfind("#"), text.rfind(":")) + 1
    return text[:cut], text[cut:]


def _generated_namespace(pipe_id: str, prefix: str) -> str:
    with _generated_lock:
        table = _generated.setdefault(pipe_id, {})
        name = table.get(prefix)
        if name is None:
            name = table[prefix] = f"{pipe_id}-{len(table) + 1}"
        return name


def collapse_uri(uri: URI, pipe_id: str | None) -> NI:
    """A URI as an NI: the longest declared prefix gives the namespace, else a generated one."""
    text = uri.value
    best = None
    for name, prefix in DECLARED_NAMESPACES.items():
        if text.startswith(prefix) and (best is None or len(prefix) > len(best[1])):
            best = (name, prefix)
    if best is not None:
        return NI.of(best[0], text[len(best[1]):])
    prefix, ident = _split_uri(text)
    if not prefix:
        return NI(text)
    return NI.of(_generated_namespace(pipe_id or "pipe", prefix), ident)


def _ni_element(namespace: Any, ns: Namespaces) -> Callable[[Any], Any] | None:
    """The element function of ``ni`` for a NAMESPACE argument (``_NO_NAMESPACE`` when omitted)."""
    if namespace is _NO_NAMESPACE:
        pipe_id = ns.pipe_id

        def global_ni(value: Any) -> Any:
            kind = type(value)
            if kind is str:
                return NI(value)
            if kind is URI:
                return collapse_uri(value, pipe_id)
            if kind is NI:
                return value
            return IGNORE

        return global_ni
    if type(namespace) is not str:
        return None
    prefix = namespace + ":"
    return lambda value: NI(prefix + value) if type(value) is str else IGNORE


@expression("ni", args=(1, 2))
def _ni(call: Call) -> Evaluator:
    """``["ni", NAMESPACE?, VALUES]``: strings (and, without NAMESPACE, URIs) become NIs."""
    ns = call.compiler.ns
    values = call.compile(len(call.args) - 1)
    namespace_of = call.compile(0) if len(call.args) == 2 else constant(_NO_NAMESPACE)
    if is_constant(namespace_of):
        namespace = namespace_of.dtl_constant  # type: ignore[attr-defined]
        element = _ni_element(namespace, ns)
        if element is None:
            return constant(None)
        # URIs are collapsed at run time only: that may allocate a generated namespace for the pipe
        if is_constant(values) and namespace is not _NO_NAMESPACE:
            return constant(apply_elementwise(element, values.dtl_constant))  # type: ignore[attr-defined]
        return lambda c: apply_elementwise(element, values(c))

    def evaluate(c: Ctx) -> Any:
        element = _ni_element(namespace_of(c), ns)
        return None if element is None else apply_elementwise(element, values(c))

    return evaluate


def _ni_text(value: Any) -> str | None:
    kind = type(value)
    if kind is NI:
        return value.value  # type: ignore[no-any-return]
    if kind is str:
        return value  # type: ignore[no-any-return]
    return None


@elementwise("ni-ns")
def ni_ns(value: Any) -> Any:
    """The namespace of an NI or string (before the last colon; ``""`` when there is none)."""
    text = _ni_text(value)
    return IGNORE if text is None else text.rpartition(":")[0]


@elementwise("ni-id")
def ni_id(value: Any) -> Any:
    """The identifier of an NI or string (after the last colon)."""
    text = _ni_text(value)
    return IGNORE if text is None else text.rpartition(":")[2]


is_ni = type_predicate("is-ni", lambda v: type(v) is NI)
