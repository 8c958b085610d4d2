"""Pipe cycles that never settle: a warning when every pipe of a cycle keeps changing entities.

Pipes form a graph: an edge goes from the pipe writing a dataset to each pipe that reads it as its source or
tracks it (hops with dependency tracking), the inputs whose commits wake a pipe. A cycle in that graph (a
strongly connected component of two or more pipes, or a pipe that reads its own sink) is normal while its
data converges: each pass changes less, until a pass changes nothing. DTL that changes its output on
every pass (a counter, ``now``, a random value) never converges: the pipes wake each other for ever, each
run writing new versions.

The heuristic (:class:`CycleDetector`, sans-IO): per pipe in a cycle, count its consecutive runs that
ended ``pump-completed`` with ``changes > 0``; a run without changes, a skipped or a failed run sets it
back to 0. When the least count over the cycle's members reaches ``rounds`` (default
:data:`DEFAULT_ROUNDS`; node metadata ``pipe_cycle_warning_rounds``, 0 turns it off), every member has
changed entities in each of its last ``rounds`` runs: the cycle is warned about, once, until one of its
members has a run without changes (then it may be warned about again). A converging cycle has a member
whose run changes nothing within a pass or two, so it is never warned about.

:class:`CycleWatch` drives it from the node's event bus and warns four ways: a WARNING log record naming
the pipes, a ``pipe-cycle-warning`` event (``pipes``, ``rounds``, ``threshold``: in the feed, and counted in
the metrics), a ``pipe-cycle-warning`` entity in each member's execution log, and :meth:`CycleWatch.active`
for the metrics' gauge.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from actors import DatasetWrite
from actors._events import iso_now

from ._node import EXECUTION_DATASET, Node
from ._run_all_plan import _components

__all__ = ["DEFAULT_ROUNDS", "ROUNDS_SETTING", "CycleDetector", "CycleWarning", "CycleWatch", "PipeEdges",
           "find_cycles", "watch"]

log = logging.getLogger("sesamd.cycles")

DEFAULT_ROUNDS = 10
ROUNDS_SETTING = "pipe_cycle_warning_rounds"  # in the node metadata
EVENT = "pipe-cycle-warning"


@dataclass(frozen=True)
class PipeEdges:
    """What a pipe reads (the datasets whose commits wake it) and the dataset it writes."""

    reads: frozenset[str]
    writes: str | None


@dataclass(frozen=True)
class CycleWarning:
    """A cycle whose every member changed entities in each of its last ``rounds`` runs."""

    pipes: tuple[str, ...]
    rounds: int


def find_cycles(graph: Mapping[str, PipeEdges]) -> list[tuple[str, ...]]:
    """The cycles of the pipe graph: its strongly connected components of two or more pipes, and single
    pipes reading their own sink; each in sorted order, sorted."""
    writers: dict[str, set[str]] = {}
    for pipe_id, edges in graph.items():
        if edges.writes is not None:
            writers.setdefault(edges.writes, set()).add(pipe_id)
    successors: dict[str, set[str]] = {pipe_id: set() for pipe_id in graph}
    for pipe_id, edges in graph.items():
        for dataset in edges.reads:
            for writer in writers.get(dataset, ()):
                successors[writer].add(pipe_id)
    found = [tuple(c) for c in _components(sorted(graph), successors)
             if len(c) > 1 or c[0] in successors[c[0]]]
    return sorted(found)


class CycleDetector:
    """Counts the changing runs of the pipes in cycles (see the module docstring); events in, warnings out."""

    def __init__(self, rounds: int = DEFAULT_ROUNDS) -> None:
        self.rounds = rounds
        self._cycle_of: dict[str, tuple[str, ...]] = {}
        self._streak: dict[str, int] = {}
        self._warned: set[tuple[str, ...]] = set()

    @property
    def cycles(self) -> list[tuple[str, ...]]:
        return sorted(set(self._cycle_of.values()))

    def set_graph(self, graph: Mapping[str, PipeEdges], rounds: int | None = None) -> None:
        """A new pipe graph (a config change); a pipe keeps its count while it stays in the same cycle."""
        if rounds is not None:
            self.rounds = rounds
        cycle_of = {pipe_id: cycle for cycle in find_cycles(graph) for pipe_id in cycle}
        self._streak = {p: n for p, n in self._streak.items() if cycle_of.get(p) == self._cycle_of.get(p)}
        self._warned &= set(cycle_of.values())
        self._cycle_of = cycle_of

    def observe(self, event: Mapping[str, Any]) -> list[CycleWarning]:
        """Account a ``pump-completed`` or ``pump-failed`` event; returns the warnings it raises."""
        kind, pipe_id = event.get("type"), event.get("pipe")
        if kind not in ("pump-completed", "pump-failed") or not isinstance(pipe_id, str):
            return []
        cycle = self._cycle_of.get(pipe_id)
        if cycle is None:
            return []
        changes = event.get("changes")
        changed = kind == "pump-completed" and type(changes) is int and changes > 0
        self._streak[pipe_id] = self._streak.get(pipe_id, 0) + 1 if changed else 0
        if not changed:
            self._warned.discard(cycle)
            return []
        rounds = min(self._streak.get(member, 0) for member in cycle)
        if self.rounds <= 0 or rounds < self.rounds or cycle in self._warned:
            return []
        self._warned.add(cycle)
        return [CycleWarning(cycle, rounds)]

    def active(self) -> dict[str, tuple[str, ...]]:
        """The pipes of the cycles warned about (and not settled since): pipe -> its cycle."""
        return {pipe_id: cycle for cycle in self._warned for pipe_id in cycle}


def graph_of(node: Node) -> dict[str, PipeEdges]:
    """The node's valid pipes as the detector sees them."""
    graph = {}
    for state in node.pipes.values():
        runner = state.runner
        if runner is None or not state.is_valid:
            continue
        graph[state.id] = PipeEdges(frozenset(runner.source_datasets) | frozenset(runner.tracked_datasets),
                                    runner.sink_dataset)
    return graph


def rounds_of(metadata: Mapping[str, Any]) -> int:
    """The node metadata's ``pipe_cycle_warning_rounds`` (a whole number >= 0), else the default."""
    value = metadata.get(ROUNDS_SETTING, DEFAULT_ROUNDS)
    if type(value) is not int or value < 0:
        log.warning("node metadata %s must be a whole number >= 0 (0: off), not %r: using %d", ROUNDS_SETTING,
                    value, DEFAULT_ROUNDS)
        return DEFAULT_ROUNDS
    return value


class CycleWatch:
    """The detector over a node's event bus (:meth:`run`, a background task of the node)."""

    TYPES = frozenset({"pump-completed", "pump-failed", "config-applied"})

    def __init__(self, node: Node) -> None:
        self.node = node
        self.detector = CycleDetector()

    def refresh(self) -> None:
        self.detector.set_graph(graph_of(self.node), rounds_of(self.node.metadata))

    def active(self) -> dict[str, tuple[str, ...]]:
        return self.detector.active()

    async def run(self) -> None:
        with self.node.events.subscribe(maxsize=10_000, filter=lambda e: e.get("type") in self.TYPES) as events:
            self._step(None)
            async for event in events:
                for warning in self._step(event):
                    await self.warn(warning)

    def _step(self, event: dict[str, Any] | None) -> list[CycleWarning]:
        """Account one event (None or ``config-applied``: read the graph again); a watch that fails here logs
        it and goes on (it must never take the node down)."""
        try:
            if event is None or event.get("type") == "config-applied":
                self.refresh()
                return []
            return self.detector.observe(event)
        except Exception:
            log.exception("the pipe-cycle watch failed on %s", "the config" if event is None else event.get("type"))
            return []

    async def warn(self, warning: CycleWarning) -> None:
        names = ", ".join(warning.pipes)
        message = (f"pipe cycle {names}: every pipe in it changed entities in each of its last {warning.rounds} "
                   f"runs; DTL that changes its output on every pass (a counter, a timestamp) makes the pipes "
                   f"wake each other and write new versions without end")
        log.warning("%s", message, extra={"pipes": names})
        self.node.events.publish({"type": EVENT, "pipes": list(warning.pipes), "rounds": warning.rounds,
                                  "threshold": self.detector.rounds, "message": message})
        await self._log_in_pipes(warning, message)

    async def _log_in_pipes(self, warning: CycleWarning, message: str) -> None:
        """A ``pipe-cycle-warning`` entity in each member's execution log (through its dataset's writer)."""
        when = iso_now()
        for pipe_id in warning.pipes:
            entity = {"_id": EVENT, "event_type": EVENT, "event_time": when, "pipe": pipe_id,
                      "cycle": list(warning.pipes), "rounds": warning.rounds, "message": message}
            try:
                await self.node.writers.apply(DatasetWrite(EXECUTION_DATASET.format(pipe_id),
                                                           lambda dataset, e=entity: dataset.write([e])))
            except Exception as exc:  # the warning is in the log, the feed and the metrics already
                log.error("pipe %s: writing the cycle warning to its execution log failed: %s", pipe_id, exc)


_watches: weakref.WeakKeyDictionary[Node, CycleWatch] = weakref.WeakKeyDictionary()


def watch(node: Node) -> CycleWatch:
    """The node's watch, started as a background task of the node on the first call."""
    found = _watches.get(node)
    if found is None:
        found = _watches[node] = CycleWatch(node)
        node.spawn(found.run)
    return found
