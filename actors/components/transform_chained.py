"""The legacy ``chained`` transform: a list of transform configs applied in order, as one transform.

``{"type": "chained", "transforms": [t1, t2, ...]}`` behaves like the pipe's ``"transform": [t1, t2, ...]``
(node-spec 7.0): each member's output is the next one's input, and every member gets the same ``bound``
(``_B``). Members are built through the registry; their config errors name them
(``transform[0].transforms[1]``). The join plan is the members' plans together (see :attr:`join_plan`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from dtl import JoinPlan

from ._base import BuildContext, Transform
from ._registry import component, lookup

__all__ = ["ChainedTransform", "combine_plans"]


def combine_plans(plans: list[JoinPlan]) -> JoinPlan | None:
    """One join plan with every edge and subset of ``plans`` (None for none; when at most one of them
    joins anything, that one is returned as it is).

    The engine traces a change through each plan with the source entity as the root of every edge (as it
    does for a pipe's list of DTL transforms, whose non-first members' hops must keep the source's join
    keys, dtl-spec 8). Tracing the union finds at least what the plans find one by one: dependency
    tracking may reprocess a few more source entities, never fewer.
    """
    if not plans:
        return None
    joining = [plan for plan in plans if plan.edges or plan.subsets]
    if len(joining) <= 1:
        return joining[0] if joining else plans[0]
    plans = joining
    edges = dict.fromkeys(edge for plan in plans for edge in plan.edges)
    subsets = dict.fromkeys(subset for plan in plans for subset in plan.subsets)
    return JoinPlan(edges=tuple(edges), subsets=tuple(subsets))


@component("transform", "chained", {
    "required": ["transforms"],
    "properties": {
        "transforms": {"type": ["array", "object"], "items": {"type": "object"}},
        "side_effects": {"type": "boolean"},
    },
})
class ChainedTransform(Transform):
    """Runs its ``transforms`` one after the other (an object is a chain of one)."""

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        super().__init__(config, context)
        members = config["transforms"]
        members = members if isinstance(members, list) else [members]
        self.transforms: list[Transform] = []
        for index, member in enumerate(members):
            where = f"{context.where}.transforms[{index}]"
            spec = lookup("transform", member, f"pipe {context.pipe_id}: {where}")
            self.transforms.append(spec.factory(member, dataclasses.replace(context, where=where)))
        self._plan = combine_plans([p for p in (m.join_plan for m in self.transforms) if p is not None])

    def transform(self, batch: list[dict[str, Any]], *,
                  bound: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        for member in self.transforms:
            batch = member.transform(batch, bound=bound)
        return batch

    @property
    def join_plan(self) -> JoinPlan | None:
        """The members' join plans combined (:func:`combine_plans`)."""
        return self._plan

    @property
    def datasets_read(self) -> frozenset[str]:
        return frozenset().union(*(member.datasets_read for member in self.transforms))
