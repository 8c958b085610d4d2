"""Extension points of a pipe: one small base class each for sources, transforms and sinks.

Components are synchronous and work on batches of wire-form entities; the engine calls them from a
worker thread. Each component type is one module that registers its class under a name together with a
JSON Schema that validates (and documents) its config; see :mod:`actors.components._registry`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

import storage

from .._datasets import Datasets, DatasetWrite
from ._registry import ConfigError

__all__ = ["CONTINUATION_FLAGS", "BuildContext", "Sink", "Source", "Transform", "global_defaults", "in_batches",
           "load_state", "setting", "state_write"]

CONTINUATION_FLAGS = ("supports_since", "is_since_comparable", "is_chronological")


def global_defaults(metadata: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``global_defaults`` of the node metadata (node-spec 3.6); empty when there are none."""
    defaults = metadata.get("global_defaults")
    return defaults if isinstance(defaults, Mapping) else {}


def setting(config: Mapping[str, Any], metadata: Mapping[str, Any], name: str, default: Any) -> Any:
    """``config[name]`` when set, else the node's ``global_defaults[name]``, else ``default``."""
    if config.get(name) is not None:
        return config[name]
    value = global_defaults(metadata).get(name)
    return default if value is None else value


@dataclass
class BuildContext:
    """What a component may use when it is built for a pipe."""

    pipe_id: str
    pipe: dict[str, Any]
    datasets: Datasets
    metadata: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, Any] = field(default_factory=dict)  # for DTL "$SECRET(name)" crypto keys
    where: str = ""  # the component's place in the pipe config, e.g. "transform[0]"
    systems: Mapping[str, Any] = field(default_factory=dict)  # the built systems the pipe names, by id


class Source:
    """Yields batches of wire-form entities.

    ``supports_since``/``is_chronological``/``is_since_comparable`` decide the continuation strategy
    (node-spec 4.3); a source that supports since sets ``_updated`` on every entity it yields. The class
    attributes are the type's values; the config may set those in ``settable_flags`` ("default" in the
    node-spec 6.0 table) and may repeat the others ("fixed") only with their value.
    """

    supports_since = False
    is_chronological = False
    is_since_comparable = True
    settable_flags: frozenset[str] = frozenset()
    datasets: tuple[str, ...] = ()  # the datasets it reads (dependencies, signalling, populated input)
    receives = False  # entities are pushed to it over the API (no pump runs it)
    adds_namespaces = False  # an external source: add_namespaces defaults to namespaced_identifiers

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        self.config = config
        self.context = context
        self.configure_flags(config)

    @classmethod
    def schema_properties(cls) -> dict[str, Any]:
        """The config properties of every source type: its continuation flags (a fixed one ``readOnly``)
        and ``initial_since_value``. The registry adds them to the type's JSON Schema."""
        properties: dict[str, Any] = {}
        for flag in CONTINUATION_FLAGS:
            properties[flag] = {"type": "boolean", "default": getattr(cls, flag)}
            if flag not in cls.settable_flags:
                properties[flag]["readOnly"] = True
        properties["initial_since_value"] = {}
        properties["add_namespaces"] = {"type": "boolean", "description": "namespaces added before the first "
                                        "transform (default: namespaced_identifiers for external sources)"}
        return properties

    def configure_flags(self, config: Mapping[str, Any]) -> None:
        """Take the continuation flags the config sets; a fixed flag set to another value is a ConfigError."""
        for flag in CONTINUATION_FLAGS:
            if flag not in config:
                continue
            value = config[flag]
            if flag in self.settable_flags:
                setattr(self, flag, bool(value))
            elif value != getattr(self, flag):
                fixed = orjson.dumps(getattr(self, flag)).decode()
                raise ConfigError(f"is fixed to {fixed} for source type {config.get('type')!r}",
                                  where=f"{self.where}.{flag}")

    @property
    def where(self) -> str:
        """The source's place in the config, for errors (``pipe x: source``)."""
        return f"pipe {self.context.pipe_id}: {self.context.where}"

    @property
    def continuation(self) -> str:
        """The continuation strategy (node-spec 4.3): ``chronological``, ``max`` or ``none``."""
        if self.supports_since and self.is_chronological:
            return "chronological"
        if self.supports_since and self.is_since_comparable:
            return "max"
        return "none"

    def read(self, since: Any | None, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        raise NotImplementedError  # pragma: no cover - abstract

    def end_offset(self) -> Any | None:
        """The offset after the last entity (for ``set-last-seen-to-end``); None when unsupported."""
        return None

    def is_populated(self) -> bool:
        """Whether the source's content reflects one complete read of its producer (node-spec 2.5); a source
        that reads no dataset counts as populated."""
        return not self.unpopulated()

    def unpopulated(self) -> list[str]:
        """The input datasets that keep the source from being populated (node-spec 2.5)."""
        return []

    @property
    def require_populated_input(self) -> bool:
        """Whether runs wait until the input is populated (node-spec 2.5, 6.0): for dataset-reading sources
        the source's ``require_populated_input``, else the node's global default (false)."""
        if not self.datasets:
            return False
        return bool(setting(self.config, self.context.metadata, "require_populated_input", False))

    @property
    def dataset_source(self) -> str | None:
        """The dataset read when this is a plain dataset source (the only kind with dependency tracking)."""
        return None


class Transform:
    """Maps a batch of wire-form entities to a batch (it may drop, change or add entities).

    ``bound`` is what DTL sees as ``_B``: the query parameters of a publisher request, else empty."""

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        self.config = config
        self.context = context

    def transform(self, batch: list[dict[str, Any]], *,
                  bound: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError  # pragma: no cover - abstract

    @property
    def join_plan(self) -> Any | None:
        """The DTL join plan, for transforms that hop (dependency tracking)."""
        return None

    @property
    def datasets_read(self) -> frozenset[str]:
        """Every dataset the transform reads (DTL hops, apply-hops and lookups, tracked or not)."""
        return frozenset()


class Sink:
    """Delivers batches. Every write returns a :class:`~actors.DatasetWrite` that commits the pipe's state
    (offsets) together with the batch's data in one LevelDB batch; the pipe's runner has it applied by the
    dataset's single writer. A sink that talks to another system does that I/O inside :meth:`write` (then
    ``blocking`` is true and the pipeline calls it in a worker thread) and returns the state commit."""

    dataset: str | None = None  # the dataset it writes entities to, if any
    blocking = False
    publishes: str | None = None  # a publisher's URL kind (/api/publishers/<pipe>/<kind>): no pump runs it
    removes_namespaces = False  # an external sink: remove_namespaces defaults to namespaced_identifiers

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        self.config = config
        self.context = context

    @classmethod
    def schema_properties(cls) -> dict[str, Any]:
        """The config properties of every sink type (the registry adds them to the type's JSON Schema)."""
        return {"remove_namespaces": {"type": "boolean", "description": "namespaces removed after the last "
                                      "transform (default: namespaced_identifiers for external sinks)"}}

    def write(self, batch: list[dict[str, Any]], *, state: dict[str, Any], full_run: Any | None) -> DatasetWrite:
        """Deliver a batch; the returned write commits it with ``state`` and returns the number of changes."""
        raise NotImplementedError  # pragma: no cover - abstract

    def begin_full_run(self) -> DatasetWrite | None:
        """The write that starts a full run (its result is passed to :meth:`end_full_run`), if any."""
        return None

    def end_full_run(self, run: Any, *, state: dict[str, Any], if_empty: str) -> DatasetWrite:
        """Finish a successful full run (deletion tracking); the write returns the number of deletes."""
        return self.save_state(state)

    def load_state(self) -> dict[str, Any]:
        """The pipe state committed with the last batch: ``{"offset": ..., "tracking": {...}}``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def save_state(self, state: dict[str, Any]) -> DatasetWrite:
        """The write that commits ``state`` alone (returns 0)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def on_load(self) -> DatasetWrite | None:
        """The write to make when the pipe is loaded or configured, if any."""
        return None

    def begin_run(self) -> DatasetWrite | None:
        """The write to make at the start of every run (after :meth:`begin_full_run`), if any."""
        return None

    def finish(self, *, populated: bool) -> DatasetWrite | None:
        """The write to make after a successful run, if any."""
        return None


def in_batches(entities: Iterable[dict[str, Any]], batch_size: int) -> Iterator[list[dict[str, Any]]]:
    """The entities in lists of ``batch_size`` (the last one shorter), as a source's ``read`` yields them."""
    batch: list[dict[str, Any]] = []
    for entity in entities:
        batch.append(entity)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def load_state(datasets: Datasets, name: str, key: str) -> dict[str, Any]:
    """The pipe state committed under ``key`` in dataset ``name`` (empty when there is none)."""
    dataset = datasets.get(name)
    return {} if dataset is None else dataset.get_offset(key, {}) or {}


def state_write(name: str, key: str, state: dict[str, Any], changes: int = 0) -> DatasetWrite:
    """The write that commits a pipe's ``state`` under ``key`` in dataset ``name`` (no data); it returns
    ``changes`` (an external sink: the entities it delivered with the state)."""

    def save(dataset: storage.Dataset) -> int:
        dataset.write([], offset_key=key, offset=state)
        return changes

    return DatasetWrite(name, save)
