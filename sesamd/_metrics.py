"""The node's Prometheus metrics (``GET /api/metrics``), in a registry of its own (prometheus-client).

Names follow node-spec 14.3 where it gives them (``sesam_pump_*``, ``sesam_pipe_*``; counters as
``_total`` with ``_created``), ``sesam_``-prefixed otherwise. Two sources:

- **counters and histograms fed by the event bus** (:meth:`NodeMetrics.observe`, a listener of
  ``node.events``: synchronous, so no event is missed and none is waited for): runs started, completed
  with changes (noop runs are not counted, as in Sesam), failed, interrupted (stopped); entities seen,
  changed and deletion-tracked; run durations; the last run's time; actor restarts and crashes; pipe-cycle
  warnings; versions removed by dataset compaction; and, from the app's request hooks, HTTP requests by
  route template, method and status;
- **gauges collected at scrape time** (:class:`NodeCollector`) from the node's public views: per pipe
  ``sesam_pipe_enabled``, ``sesam_pipe_config`` (1 valid), ``sesam_pump_successful`` (1 / -1 / 0 = never
  ran), ``sesam_pipe_queue_source`` (source lag: the source dataset's end minus the pipe's offset, the
  runtime's ``queues.source``), ``sesam_pipe_queue_tracking`` (per tracked dataset),
  ``sesam_pipe_sink_dataset_count_*``, ``sesam_pipe_cycle_warning`` (1 while a cycle warning holds); per
  dataset its counts and ``sesam_dataset_damaged``.

The pipe gauges (``sesam_pipe_*``) are labelled ``pipe``, ``config_group`` (the pipe's
``metadata.$config-group``, ``default`` without one) and ``leaf`` (``true`` when no other pipe reads the
pipe's sink dataset: its source, dependency tracking, hops or lookups; a pipe without a sink dataset is a
leaf). The pump metrics (``sesam_pump_*``, labelled ``pipe``) are left out for a disabled pipe and for a pump
in ``manual`` or ``off`` mode (node-spec 14.3), decided at each scrape: the bus-fed ones are kept in a
registry of their own and filtered into the scrape, so they count on while left out and come back whole.

A scrape reads the pumps' views in the Trio thread (as the API does) and the datasets in a worker thread.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ._config import group_of
from ._node import Node

__all__ = ["CONTENT_TYPE", "NodeCollector", "NodeMetrics", "PipeView", "for_node"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RUN_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PIPE_LABELS = ["pipe", "config_group", "leaf"]  # the pipe gauges' (node-spec 14.3)
DEFAULT_GROUP = "default"  # the config_group label of a pipe in the default config group
_COUNTS = (("count_index_exists", "entities"), ("count_index_deleted", "deleted"), ("count_log_exists", "log_exists"),
           ("count_log_deleted", "log_deleted"))


def _epoch(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class PipeView:
    """What a scrape shows of one pipe, read in the Trio thread."""

    id: str
    valid: bool
    runtime: Mapping[str, Any]
    sink: str | None
    cycle: bool = False
    config_group: str = DEFAULT_GROUP
    leaf: bool = True

    @property
    def labels(self) -> list[str]:
        """The values of :data:`PIPE_LABELS`."""
        return [self.id, self.config_group, "true" if self.leaf else "false"]

    @property
    def pumped(self) -> bool:
        """Whether its pump metrics are exported: an enabled pipe whose pump is scheduled (not manual/off)."""
        return not self.runtime.get("is-disabled") and self.runtime.get("mode") == "scheduled"


@dataclass
class _Scrape:
    pipes: list[PipeView] = field(default_factory=list)


class NodeCollector(Collector):
    """The scrape-time gauges of a node (see the module docstring), and the bus-fed pump metrics of
    ``pumps`` for the pipes whose pump metrics are exported; reads ``scrape.pipes`` set by the caller and the
    node's datasets."""

    def __init__(self, node: Node, pumps: CollectorRegistry) -> None:
        self.node = node
        self.pumps = pumps
        self.scrape = _Scrape()

    def collect(self) -> Iterator[Metric]:
        pipes = self.scrape.pipes
        gauges = {name: GaugeMetricFamily(name, text, labels=PIPE_LABELS) for name, text in (
            ("sesam_pipe_enabled", "1 if the pipe's pump is enabled"),
            ("sesam_pipe_config", "1 if the pipe's config is valid, else 0"),
            ("sesam_pipe_queue_source", "Source lag: entities in the source dataset after the pipe's offset"),
            ("sesam_pipe_cycle_warning", "1 while the pipe is in a cycle warned about (pipe-cycle-warning)"),
            ("sesam_pipe_circuit_breaker_tripped", "1 while the circuit breaker of the sink dataset has tripped"),
        )}
        tracking = GaugeMetricFamily("sesam_pipe_queue_tracking", "Changes in a tracked (hopped-to) dataset after "
                                     "the pipe's dependency-tracking offset", labels=[*PIPE_LABELS, "dataset"])
        sinks = {suffix: GaugeMetricFamily(f"sesam_pipe_sink_dataset_{suffix}", f"The sink dataset's {key} count",
                                           labels=PIPE_LABELS) for suffix, key in _COUNTS}
        successful = GaugeMetricFamily("sesam_pump_successful", "1 if the last run succeeded, -1 if it failed, 0 "
                                       "if it never ran", labels=["pipe"])
        counts = self._dataset_counts()
        for pipe in pipes:
            runtime, labels = pipe.runtime, pipe.labels
            gauges["sesam_pipe_enabled"].add_metric(labels, 0.0 if runtime.get("is-disabled") else 1.0)
            gauges["sesam_pipe_config"].add_metric(labels, 1.0 if pipe.valid else 0.0)
            success = runtime.get("success")
            if pipe.pumped:
                successful.add_metric([pipe.id], 0.0 if success is None else 1.0 if success else -1.0)
            gauges["sesam_pipe_cycle_warning"].add_metric(labels, 1.0 if pipe.cycle else 0.0)
            gauges["sesam_pipe_circuit_breaker_tripped"].add_metric(labels, 1.0 if self._tripped(pipe.sink) else 0.0)
            queues = runtime.get("queues") or {}
            source = queues.get("source")
            if isinstance(source, int | float):
                gauges["sesam_pipe_queue_source"].add_metric(labels, float(source))
            for dataset, queued in sorted((queues.get("dependencies") or {}).items()):
                if isinstance(queued, int | float):
                    tracking.add_metric([*labels, dataset], float(queued))
            sink_counts = counts.get(pipe.sink) if pipe.sink is not None else None
            if sink_counts is not None:
                for suffix, key in _COUNTS:
                    sinks[suffix].add_metric(labels, float(sink_counts[key]))
        yield from gauges.values()
        yield tracking
        yield from sinks.values()
        yield successful
        yield from self._pump_metrics({pipe.id for pipe in pipes if pipe.pumped})
        yield from self._datasets(counts)

    def _pump_metrics(self, exported: set[str]) -> Iterator[Metric]:
        """The bus-fed pump metrics, only the samples of the ``exported`` pipes."""
        for family in self.pumps.collect():
            kept = Metric(family.name, family.documentation, family.type, family.unit)
            kept.samples = [sample for sample in family.samples if sample.labels.get("pipe") in exported]
            yield kept

    def _tripped(self, sink: str | None) -> bool:
        """Whether the circuit breaker of the sink dataset has tripped (node-spec 2.8)."""
        if sink is None or sink in self.node.datasets.damaged():
            return False
        try:
            dataset = self.node.datasets.get(sink)
        except Exception:  # being deleted, or found damaged just now
            return False
        return dataset is not None and dataset.breaker_tripped

    def _dataset_counts(self) -> dict[str, dict[str, int]]:
        found = {}
        damaged = self.node.datasets.damaged()
        for name in self.node.datasets.names():
            if name in damaged:
                continue
            try:
                dataset = self.node.datasets.get(name)
                if dataset is not None:
                    found[name] = dataset.counts()
            except Exception:  # being deleted, or found damaged just now: left out of this scrape
                continue
        return found

    def _datasets(self, counts: Mapping[str, Mapping[str, int]]) -> Iterator[Metric]:
        families = {key: GaugeMetricFamily(f"sesam_dataset_{suffix}", f"The dataset's {key} count",
                                           labels=["dataset"]) for suffix, key in _COUNTS}
        for name, found in sorted(counts.items()):
            for _suffix, key in _COUNTS:
                families[key].add_metric([name], float(found[key]))
        yield from families.values()
        damaged = GaugeMetricFamily("sesam_dataset_damaged", "1 for each dataset found damaged (refused until "
                                    "repaired)", labels=["dataset"])
        for name in sorted(self.node.datasets.damaged()):
            damaged.add_metric([name], 1.0)
        yield damaged


class NodeMetrics:
    """A node's registry: the bus-fed counters and the scrape-time collector (use :func:`for_node`)."""

    def __init__(self, node: Node, cycles: Callable[[], Mapping[str, Any]] = dict) -> None:
        self.node = node
        self.cycles = cycles
        self.registry = CollectorRegistry()
        registry = self.pumps = CollectorRegistry()  # the pump metrics, filtered into each scrape
        by_pipe = ["pipe"]
        self.started = Counter("sesam_pump_started", "Pump runs started", by_pipe, registry=registry)
        self.completed = Counter("sesam_pump_completed", "Pump runs completed with changes (noop runs not "
                                 "counted)", by_pipe, registry=registry)
        self.failed = Counter("sesam_pump_failed", "Pump runs failed (not interrupted)", by_pipe, registry=registry)
        self.interrupted = Counter("sesam_pump_interrupted", "Pump runs stopped before their end", by_pipe,
                                   registry=registry)
        self.seen = Counter("sesam_pump_entities_seen", "Entities read by pump runs (source and dependency "
                            "tracking)", by_pipe, registry=registry)
        self.changes = Counter("sesam_pump_entities_changes", "Entity versions written by pump runs (changes)",
                               by_pipe, registry=registry)
        self.deleted = Counter("sesam_pump_entities_deletion_tracked", "Entities deleted by deletion tracking",
                               by_pipe, registry=registry)
        self.duration = Histogram("sesam_pump_run_duration_seconds", "Duration of ended pump runs", by_pipe,
                                  buckets=RUN_BUCKETS, registry=registry)
        self.total_time = Gauge("sesam_pump_total_time", "Seconds the last run took", by_pipe, registry=registry)
        self.last_completed = Gauge("sesam_pump_last_completed_time", "When the last run completed (epoch "
                                    "seconds)", by_pipe, registry=registry)
        registry = self.registry
        self.restarts = Counter("sesam_actor_restarts", "Actor restarts by the supervisor", ["actor"],
                                registry=registry)
        self.crashes = Counter("sesam_actor_crashes", "Actor crashes (restarted or failed)", ["actor"],
                               registry=registry)
        self.cycle_warnings = Counter("sesam_pipe_cycle_warnings", "Pipe-cycle warnings that named the pipe",
                                      by_pipe, registry=registry)
        self.requests = Counter("sesam_http_requests", "API requests answered", ["method", "route", "status"],
                                registry=registry)
        self.compacted = Counter("sesam_dataset_compacted_versions", "Versions removed by dataset compaction",
                                 ["dataset"], registry=registry)
        self.request_seconds = Histogram("sesam_http_request_duration_seconds", "Seconds to an API response's "
                                         "headers", ["method", "route"], buckets=HTTP_BUCKETS, registry=registry)
        self.collector = NodeCollector(node, self.pumps)
        registry.register(self.collector)
        self._render_lock = threading.Lock()

    # -- the bus -----------------------------------------------------------------------------------------

    def observe(self, event: Mapping[str, Any]) -> None:
        """An event bus listener (never blocks, never raises)."""
        try:
            self._count(event)
        except Exception:  # a malformed event costs its count, never the publisher
            pass

    def _count(self, event: Mapping[str, Any]) -> None:
        kind, pipe = event.get("type"), event.get("pipe")
        if kind in ("actor-restarted", "actor-crashed", "actor-failed"):
            actor = str(event.get("actor"))
            (self.restarts if kind == "actor-restarted" else self.crashes).labels(actor).inc()
            return
        if kind == "pipe-cycle-warning":
            for member in event.get("pipes") or ():
                self.cycle_warnings.labels(str(member)).inc()
            return
        if kind == "dataset-compacted":
            self.compacted.labels(str(event.get("dataset"))).inc(_count_of(event.get("removed")))
            return
        if not isinstance(pipe, str):
            return
        if kind == "pump-started":
            self.started.labels(pipe).inc()
            return
        if kind not in ("pump-completed", "pump-failed"):
            return
        changes = _count_of(event.get("changes"))
        if kind == "pump-completed":
            if changes:
                self.completed.labels(pipe).inc()
            ended = _epoch(event.get("end_time"))
            if ended is not None:
                self.last_completed.labels(pipe).set(ended)
        elif event.get("original_error_message") is None:  # stopped (a failure always says why)
            self.interrupted.labels(pipe).inc()
        else:
            self.failed.labels(pipe).inc()
        self.seen.labels(pipe).inc(_count_of(event.get("processed")))
        self.changes.labels(pipe).inc(changes)
        self.deleted.labels(pipe).inc(_count_of(event.get("deleted")))
        seconds = event.get("total_time")
        if isinstance(seconds, int | float) and seconds >= 0:
            self.duration.labels(pipe).observe(seconds)
            self.total_time.labels(pipe).set(seconds)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(method, route).observe(seconds)

    # -- scraping ----------------------------------------------------------------------------------------

    def pipe_views(self) -> list[PipeView]:
        """The pipes as a scrape shows them (in the Trio thread: the pumps' state lives there)."""
        cycles = self.cycles()
        states = sorted(self.node.pipes.values(), key=lambda s: s.id)
        readers: dict[str, set[str]] = {}  # dataset -> the pipes reading it
        for state in states:
            for dataset in state.runner.input_datasets if state.runner is not None else ():
                readers.setdefault(dataset, set()).add(state.id)
        views = []
        for state in states:
            runtime = self.node.pump_json(state.id).get("runtime", {})
            sink = state.runner.sink_dataset if state.runner is not None else None
            leaf = sink is None or not readers.get(sink, set()) - {state.id}
            views.append(PipeView(state.id, state.is_valid, runtime, sink, state.id in cycles,
                                  group_of(state.original) or DEFAULT_GROUP, leaf))
        return views

    def render(self, pipes: list[PipeView]) -> bytes:
        """The Prometheus text of the registry with ``pipes`` (blocking: call it in a worker thread)."""
        with self._render_lock:
            self.collector.scrape = _Scrape(pipes)
            try:
                return generate_latest(self.registry)
            finally:
                self.collector.scrape = _Scrape()


def _count_of(value: Any) -> int:
    return value if type(value) is int and value > 0 else 0


_metrics: weakref.WeakKeyDictionary[Node, NodeMetrics] = weakref.WeakKeyDictionary()


def for_node(node: Node, cycles: Callable[[], Mapping[str, Any]] = dict) -> NodeMetrics:
    """The node's metrics, listening to its event bus from the first call on."""
    found = _metrics.get(node)
    if found is None:
        found = _metrics[node] = NodeMetrics(node, cycles)
        node.events.add_listener(found.observe)
    return found
