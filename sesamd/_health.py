"""What the node says about its own health: pipe counts (systemd's STATUS line) and readiness (``/api/ready``).

A pipe is **failing** when it cannot run: its config is invalid, or its actor crashed so often that its
supervisor gave up on it. A pipe whose last run failed is not failing (the next run may succeed: a remote
system that was down), it is counted apart. A system is failing when its config is invalid or its actor
was given up on. The node is ready when it is not stopping and nothing is failing: no failing pipe or
system and no damaged dataset (``node.datasets.damaged()``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._node import Node

__all__ = ["PipeCounts", "Readiness", "pipe_counts", "readiness"]

CONFIG_INVALID = "its config is invalid"
GIVEN_UP = "its actor crashed too often and was given up"


@dataclass(frozen=True)
class PipeCounts:
    """How many pipes are idle, running, failing (or restarting), and how many last runs failed."""

    idle: int = 0
    running: int = 0
    failed: int = 0
    restarting: int = 0
    last_run_failed: int = 0

    @property
    def total(self) -> int:
        return self.idle + self.running + self.failed + self.restarting

    def text(self) -> str:
        """``12 pipes: 10 idle, 2 running, 0 failed`` (restarting and failed last runs when there are some)."""
        line = f"{self.total} pipe{'' if self.total == 1 else 's'}: {self.idle} idle, {self.running} running, " \
               f"{self.failed} failed"
        if self.restarting:
            line += f", {self.restarting} restarting"
        if self.last_run_failed:
            line += f"; {self.last_run_failed} last run{'' if self.last_run_failed == 1 else 's'} failed"
        return line


@dataclass(frozen=True)
class Readiness:
    """``ready`` and, when not, why: failing pipes and systems (id -> reason), damaged datasets."""

    stopping: bool = False
    pipes: dict[str, str] = field(default_factory=dict)
    systems: dict[str, str] = field(default_factory=dict)
    datasets: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return not (self.stopping or self.pipes or self.systems or self.datasets)

    def json(self) -> dict[str, Any]:
        if self.ready:
            return {"ready": True}
        return {"ready": False, "stopping": self.stopping, "failing-pipes": self.pipes,
                "failing-systems": self.systems, "damaged-datasets": self.datasets}


def _pipe_problem(node: Node, pipe_id: str, actor: Any | None) -> str | None:
    """Why the pipe is failing (None: it is not); ``actor`` is its supervisor's status of its actor."""
    if not node.pipe(pipe_id).is_valid:
        return CONFIG_INVALID
    if actor is not None and actor.state == "failed":
        return GIVEN_UP
    return None


def pipe_counts(node: Node) -> PipeCounts:
    idle = running = failed = restarting = last_failed = 0
    for pipe_id in list(node.pipes):
        actor = node.actor_status(pipe_id)
        if _pipe_problem(node, pipe_id, actor) is not None:
            failed += 1
            continue
        if actor is not None and actor.state == "restarting":
            restarting += 1
            continue
        runtime = node.pump_json(pipe_id)["runtime"]
        if runtime.get("is-running"):
            running += 1
        else:
            idle += 1
        if runtime.get("success") is False:
            last_failed += 1
    return PipeCounts(idle, running, failed, restarting, last_failed)


def readiness(node: Node) -> Readiness:
    pipes = {pipe_id: problem for pipe_id in sorted(node.pipes)
             if (problem := _pipe_problem(node, pipe_id, node.actor_status(pipe_id))) is not None}
    systems = {}
    for system_id in sorted(node.systems.systems):
        status = node.systems.status_json(node.systems.systems[system_id])
        if not status["is-valid-config"]:
            systems[system_id] = CONFIG_INVALID
        elif status["actor-state"] == "failed":
            systems[system_id] = GIVEN_UP
    return Readiness(not node.accepting_runs, pipes, systems, dict(sorted(node.datasets.damaged().items())))
