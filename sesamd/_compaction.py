"""The node's compaction of its sink datasets (node-spec 2.7): on a schedule in the background, and on demand.

**Which datasets.** Those a configured pipe writes (its sink), never ``system:`` ones (the execution logs are
trimmed by time: :mod:`actors._retention`). A pass keeps what the writing pipe's ``compaction`` settings say
(:func:`actors._retention.compaction_settings`: ``keep_versions``, 2 by default; ``time_threshold_hours``, none
by default; each else ``global_defaults.compaction_<name>``); the storage side is :mod:`storage._compaction`.
sesamd has no incremental sink compaction, so ``compaction.sink`` and ``default_compaction_type`` change
nothing: the background pass covers every sink dataset whose ``compaction.automatic`` is not false, and skips
one whose log has grown less than ``growth_threshold`` times since its last pass. ``POST
/api/datasets/{id}/compact`` runs a pass now on any dataset that is not ``system:`` (other ``keep_versions`` /
``time_threshold_hours`` may be given), and answers its result.

**Readers: computed when a pass starts, not registered.** The lowest offset the pipes still need in a dataset
is read from the configured pipes at the start of each pass rather than registered in the dataset as their
offsets commit. A pipe's offsets commit in its *sink's* batch; a registration in each *source* dataset would
be a second write to another database per batch, not atomic with the offset (a crash between them leaves it
behind or ahead), and it would have to follow resets, removed pipes and changed configs. Reading the offsets
costs no write and is exactly what the pipes have committed. A pipe protects, in each of its source datasets,
everything its source offset still needs (an ``int`` offset; the dataset's entry in the offset object of a
union or merge source; an offset it cannot read, such as none before the first run, protects the whole
dataset), and in each dataset its DTL hops into, its dependency-tracking offset (none before its first run,
which starts them at the end). Every configured pipe counts, disabled ones included; a pipe that is not
configured (removed, or invalid so that it has no runner) protects nothing, and neither does an API client
paging with ``since``. Readers registered in a dataset (``storage.Dataset.register_reader``) count as well.
Moving an offset back (a reset, ``update-last-seen``) cannot bring back what a pass removed.

**Scheduling.** A background task of the node runs a pass over the sink datasets every node metadata
``compaction.interval_seconds`` (our own name: node-spec only says that background compaction runs every
24 h, which is the default), one dataset at a time; each chunk is read from a snapshot in a worker thread and
applied by the dataset's writer (``node.writers``, under the dataset's lock), so it goes between a pipe's
batches, never into them. One pass runs at a time (the schedule and the API wait for each other). A pass that
removed versions publishes a ``dataset-compacted`` event (``dataset``, ``pipe``: the writer, ``removed``,
``bytes_freed``, ``chunks``, ``protected``, ``trigger``: ``schedule`` or ``api``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from actors import DatasetWrite, WriterClosed
from actors._retention import CompactionSettings, compaction_settings, config_number
from storage import Dataset
from storage._compaction import CompactionPolicy, CompactionResult, Compactor, compaction_meta
from storage._dataset import now_us

if TYPE_CHECKING:
    from ._node import Node

__all__ = ["DEFAULT_INTERVAL", "Compactions", "Target", "interval_of", "protected_offsets"]

log = logging.getLogger("sesamd.compaction")

DEFAULT_INTERVAL = 24 * 3600.0  # seconds between scheduled passes
INTERVAL_SETTING = "interval_seconds"  # in the node metadata's "compaction" object
_POLL = 1.0  # seconds between looks at the interval (it may change with the config)


@dataclass(frozen=True)
class Target:
    """A dataset to compact, with the settings of the pipe writing it (None: not written by a pipe)."""

    dataset: str
    settings: CompactionSettings
    pipe: str | None = None


def interval_of(metadata: Mapping[str, Any]) -> float:
    """The node metadata's ``compaction.interval_seconds``, else the default; ValueError if it is not a
    number > 0."""
    section = metadata.get("compaction")
    value = section.get(INTERVAL_SETTING) if isinstance(section, Mapping) else None
    if value is None:
        return DEFAULT_INTERVAL
    seconds = config_number(value)
    if seconds is None or seconds <= 0:
        raise ValueError(f"node metadata compaction.{INTERVAL_SETTING} must be a number of seconds > 0, not {value!r}")
    return seconds


def protected_offsets(runners: Iterable[Any]) -> dict[str, int]:
    """The lowest offset the pipes' runners still need in each dataset they read (see the module docstring);
    blocking: it reads their stored offsets."""
    needed: dict[str, int] = {}

    def need(name: str, offset: int) -> None:
        needed[name] = min(needed.get(name, offset), offset)

    for runner in runners:
        sources = list(runner.source_datasets)
        try:
            offset = runner.get_offset()
            tracking = runner.tracking_offsets()
        except Exception:  # (its sink's state cannot be read: protect all it reads)
            offset, tracking = None, {name: -1 for name in runner.tracked_datasets}
        for name in sources:
            if type(offset) is int and len(sources) == 1:
                need(name, offset)
            elif isinstance(offset, Mapping) and type(offset.get(name)) is int:
                need(name, offset[name])
            else:
                need(name, -1)
        for name, at in tracking.items():
            if type(at) is int:
                need(name, at)
    return needed


class Compactions:
    """The node's compaction (see the module docstring): :meth:`run` is its background task."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._lock = trio.Lock()
        self._warned: str | None = None  # the bad interval setting last warned about

    def interval(self) -> float:
        """The interval between scheduled passes (a bad setting is warned about once; the default holds)."""
        try:
            return interval_of(self.node.metadata)
        except ValueError as exc:
            if str(exc) != self._warned:
                self._warned = str(exc)
                log.warning("%s: using %d", exc, DEFAULT_INTERVAL)
            return DEFAULT_INTERVAL

    def targets(self) -> dict[str, Target]:
        """The sink datasets of the configured pipes with their writers' settings (a pipe whose settings are
        bad, which its config check reports, is left out)."""
        found: dict[str, Target] = {}
        for state in sorted(self.node.pipes.values(), key=lambda s: s.id):
            runner = state.runner
            sink = runner.sink_dataset if runner is not None else None
            if runner is None or not isinstance(sink, str) or sink.startswith("system:") or sink in found:
                continue
            try:
                found[sink] = Target(sink, compaction_settings(runner.config, runner.metadata, state.id), state.id)
            except ValueError as exc:
                log.warning("pipe %s: compaction settings: %s", state.id, exc)
        return found

    def target(self, name: str) -> Target:
        """The dataset's target: its writer's settings, else the node's defaults (``global_defaults``)."""
        found = self.targets().get(name)
        return found or Target(name, compaction_settings({}, self.node.metadata, "(none)"))

    async def compact(self, target: Target, *, keep_versions: int | None = None,
                      time_threshold_hours: float | None = None, trigger: str = "api") -> CompactionResult | None:
        """One pass over the dataset (None if it does not exist); ``keep_versions`` and
        ``time_threshold_hours`` override the settings. Raises ValueError for a bad combination."""
        settings = target.settings
        keep = settings.keep_versions if keep_versions is None else keep_versions
        hours = settings.time_threshold_hours if time_threshold_hours is None else time_threshold_hours
        older = None if hours is None else now_us() - int(hours * 3600e6)
        async with self._lock:
            dataset = await trio.to_thread.run_sync(self.node.datasets.get, target.dataset)
            if dataset is None:
                return None
            runners = [s.runner for s in self.node.pipes.values() if s.runner is not None]
            protected = (await trio.to_thread.run_sync(protected_offsets, runners)).get(target.dataset)
            policy = CompactionPolicy(keep, older, protected)
            result = await self._pass(dataset, policy)
        if result.removed:
            log.info("dataset %s: compaction removed %d versions (%d chunks, protected offset %s)", result.dataset,
                     result.removed, result.chunks, result.protected)
            self.node.events.publish({"type": "dataset-compacted", **result.to_json(), "pipe": target.pipe,
                                      "trigger": trigger})
        return result

    async def _pass(self, dataset: Dataset, policy: CompactionPolicy) -> CompactionResult:
        compactor = await trio.to_thread.run_sync(Compactor, dataset, policy)
        removed = freed = chunks = 0
        while (chunk := await trio.to_thread.run_sync(compactor.next_chunk)) is not None:
            count, size = await self.node.writers.apply(DatasetWrite(dataset.name, chunk.apply))
            removed, freed, chunks = removed + count, freed + size, chunks + (1 if count else 0)
        return CompactionResult(dataset.name, removed, freed, chunks, compactor.protected)

    async def compact_all(self) -> list[CompactionResult]:
        """A scheduled pass over every sink dataset that is due (``automatic``, grown enough)."""
        results = []
        for target in self.targets().values():
            if not target.settings.automatic or not self.node.accepting_runs:
                continue
            try:
                if not await trio.to_thread.run_sync(self._due, target):
                    continue
                result = await self.compact(target, trigger="schedule")
            except WriterClosed:  # (the dataset is being deleted)
                continue
            except Exception:  # housekeeping: the next pass tries again; the other datasets go on
                log.exception("dataset %s: compaction failed", target.dataset)
                continue
            if result is not None:
                results.append(result)
        return results

    def _due(self, target: Target) -> bool:
        dataset = self.node.datasets.get(target.dataset)
        if dataset is None:
            return False
        last = compaction_meta(dataset).get("log_after")
        return last is None or dataset.counts()["log"] >= target.settings.growth_threshold * last

    async def run(self) -> None:
        """The background task: a scheduled pass every ``compaction.interval_seconds``."""
        last = trio.current_time()
        while True:
            interval = self.interval()
            wait = last + interval - trio.current_time()
            if wait > 0:
                await trio.sleep(min(wait, _POLL))
                continue
            await self.compact_all()
            last = trio.current_time()
