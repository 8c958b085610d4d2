"""Runtime state of an evaluation: the per-entity environment and the (nested) contexts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["DISCARDED", "FILTERED", "Ctx", "Env", "Evaluator", "Step"]


class _Stop:
    """A value returned by a transform step to end the current rule."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


FILTERED = _Stop("FILTERED")
"""``filter`` stopped the rule: a dataset sink receives the target with ``_filtered: true``."""
DISCARDED = _Stop("DISCARDED")
"""``discard`` stopped the rule: nothing is emitted for the target."""


class Env:
    """What one run shares across all contexts: ``_B``, the dataset lookup, created entities, settings.

    ``clock`` is the time source of ``now`` (nanoseconds since the Unix epoch; None: the wall clock): the
    embedding program may freeze it for reproducible output."""

    __slots__ = ("B", "clock", "created", "entity_id", "id_required", "lookup", "sleep")

    def __init__(self, *, bound: dict[str, Any] | None = None, lookup: Any = None,
                 id_required: bool = True, sleep: Callable[[float], None] | None = None,
                 clock: Callable[[], int] | None = None) -> None:
        self.B: dict[str, Any] = bound if bound is not None else {}
        self.lookup = lookup
        self.id_required = id_required
        self.sleep = sleep
        self.clock = clock
        self.created: list[dict[str, Any]] = []
        self.entity_id: Any = None


class Ctx:
    """One evaluation context: ``_S``, ``_T``, the current ``_`` value, the parent and root contexts.

    ``h`` maps the hops aliases in scope to their current entities.
    """

    __slots__ = ("S", "T", "env", "h", "parent", "root", "u")

    def __init__(self, S: Any, T: Any, env: Env, parent: Ctx | None = None, root: Ctx | None = None,
                 h: dict[str, Any] | None = None) -> None:
        self.S = S
        self.T = T
        self.env = env
        self.parent = parent
        self.root = self if root is None else root
        self.u: Any = None
        self.h = h

    def child(self, S: Any) -> Ctx:
        """A context for a rule run by ``apply``: fresh ``_T``, this context as ``_P``."""
        return Ctx(S, {}, self.env, self, self.root, self.h)

    def as_dict(self, *, root: bool = False) -> dict[str, Any]:
        """The variable's dict form: ``{"_S", "_T"}`` plus ``"_P"`` (not for ``_R``)."""
        result: dict[str, Any] = {"_S": self.S, "_T": self.T}
        if not root and self.parent is not None:
            result["_P"] = self.parent.as_dict()
        return result


Evaluator = Callable[[Ctx], Any]
"""A compiled expression: evaluates to a value in a context."""
Step = Callable[[Ctx], Any]
"""A compiled transform function: returns None to continue, or FILTERED/DISCARDED to stop the rule."""
