"""The ``merge`` source: entities of several datasets that equality rules say are the same, merged (node-spec 6.11).

Equality rules are ``["eq", <expr on alias x>, <expr on alias y>]`` (``equality_sets`` expand to chained
rules). Each side is an index expression on its dataset, so finding the entities equal to one entity is a
secondary-index lookup, and a cluster (equality is transitive) is a breadth-first walk over those lookups.

Runs read the datasets' changes after their per-dataset offsets, in ``_ts`` order. Each changed entity's
cluster is recomputed from the current data; so is every cluster that held one of its members before (the
previous output id of each source entity is kept in ``system:merge:<pipe_id>``, indexed by output id), which
makes the cost proportional to the change. Output ids that no cluster uses any more are emitted as deletes
with ``$replaced: true``. Deleted source entities never merge: each is emitted alone, deleted.

The mapping is written together with the batch that emits its outputs, before the batch is handed to the
engine; with it go checkpoints (combined offset -> internal log position), so when the pipe's committed
offset turns out to be behind the mapping (a failed sink write, a preview), the mapping is rolled back.
Version 1 configs are accepted and run with version 2 semantics.
"""

from __future__ import annotations

import heapq
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import storage
from dtl import DTLCompileError, IndexExpression

from .._datasets import index_token
from ._base import BuildContext
from ._registry import ConfigError, component
from .source_union_datasets import MULTI_DATASET_PROPERTIES, MultiDatasetSource

__all__ = ["MergeSource"]

DEFAULT_MAX_MERGED = 50000
_OUTPUT_INDEX = IndexExpression("_S.output")
_STATE_KEY = "merge"
_MAX_CHECKPOINTS = 32
_VARIABLES = ("_S", "_T", "_P", "_R", "_B", "_")

Key = tuple[int, str]  # (position in ``datasets``, source entity id)
_Change = tuple[int, int, int, str]  # (_ts, position, offset, _id)


@dataclass(frozen=True)
class _Edge:
    """From an entity of one dataset: its values of ``own`` meet the ``other`` index of dataset ``target``."""

    own: IndexExpression
    target: int
    other: IndexExpression


@component("source", "merge", {
    "required": ["datasets"],
    "properties": {
        **MULTI_DATASET_PROPERTIES,
        "datasets": {"type": "array", "minItems": 1,
                     "items": {"type": "string", "pattern": r"^\s*[^\s/]+\s+[^\s.]+\s*$"}},
        "version": {"enum": [1, 2], "default": 1},
        "equality": {"type": "array", "items": {
            "type": "array", "minItems": 3, "maxItems": 3, "prefixItems": [{"const": "eq"}]}},
        "equality_sets": {"type": "array", "items": {"type": "array", "minItems": 1}},
        "identity": {"enum": ["composite", "first"], "default": "composite"},
        "strategy": {"enum": ["default", "compact", "list"], "default": "default"},
        "include_internal_properties": {"type": "boolean", "default": False},
        "max_merged": {"type": "integer", "minimum": 1},
    },
})
class MergeSource(MultiDatasetSource):
    """Emits one entity per cluster of equal entities: ``_id`` composite (``"0|a1|1|b1"``) or ``first``,
    ``$ids`` the union of the members' ids as NIs, properties combined by ``strategy``; superseded ids are
    emitted deleted with ``$replaced: true``. ``_updated`` is the combined per-dataset offset."""

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        where = f"pipe {context.pipe_id}: {context.where}"
        self.aliases: dict[str, int] = {}
        names: list[str] = []
        for i, item in enumerate(config["datasets"]):
            name, alias = item.split()
            if name in names:
                raise ConfigError(f"dataset {name!r} is listed twice", where=f"{where}.datasets[{i}]")
            if alias in self.aliases or alias in _VARIABLES:
                raise ConfigError(f"duplicate or reserved alias {alias!r}", where=f"{where}.datasets[{i}]")
            if name.startswith("system:merge:"):
                raise ConfigError("cannot merge an internal merge dataset", where=f"{where}.datasets[{i}]")
            self.aliases[alias] = len(names)
            names.append(name)
        super().__init__({**config, "datasets": names}, context)
        self.config = config
        self.edges: list[list[_Edge]] = [[] for _ in names]
        self.indexes: list[dict[str, IndexExpression]] = [{} for _ in names]
        pipe = {"_id": context.pipe_id}
        for i, rule in enumerate(config.get("equality", [])):
            self._add_rule(rule[1], rule[2], f"{where}.equality[{i}][1]", f"{where}.equality[{i}][2]", pipe)
        for i, group in enumerate(config.get("equality_sets", [])):
            paths = [f"{where}.equality_sets[{i}][{j}]" for j in range(len(group))]
            for j in range(1, len(group)):
                self._add_rule(group[j - 1], group[j], paths[j - 1], paths[j], pipe)
            if len(group) == 1:
                self._side(group[0], paths[0], pipe)
        self.identity: str = config.get("identity", "composite")
        self.strategy: str = config.get("strategy", "default")
        self.internal_properties = bool(config.get("include_internal_properties", False))
        defaults = context.metadata.get("global_defaults") or {}
        self.max_merged: int = config.get("max_merged") or defaults.get("max_merged") or DEFAULT_MAX_MERGED
        self.namespaced = bool(context.pipe.get("namespaced_identifiers",
                                                context.metadata.get("namespaced_identifiers", False)))
        self.internal = f"system:merge:{context.pipe_id}"

    # -- config -----------------------------------------------------------------------------------------------

    def _side(self, expr: Any, where: str, pipe: dict[str, Any]) -> tuple[int, IndexExpression]:
        """The dataset position a rule side is on and the side as an index expression on ``_S``."""
        used: set[str] = set()
        rebased = _rebase(expr, self.aliases, used)
        aliases = used & self.aliases.keys()
        if len(aliases) != 1 or used != aliases:
            raise ConfigError("an equality expression must refer to exactly one dataset alias "
                              f"(known: {', '.join(self.aliases)})", where=where)
        try:
            index = IndexExpression(rebased, pipe=pipe)
        except DTLCompileError as exc:
            raise ConfigError(str(exc), where=where) from None
        position = self.aliases[aliases.pop()]
        self.indexes[position][index.key] = index
        return position, index

    def _add_rule(self, left: Any, right: Any, left_where: str, right_where: str, pipe: dict[str, Any]) -> None:
        left_pos, left_index = self._side(left, left_where, pipe)
        right_pos, right_index = self._side(right, right_where, pipe)
        for owner, edge in ((left_pos, _Edge(left_index, right_pos, right_index)),
                            (right_pos, _Edge(right_index, left_pos, left_index))):
            if edge not in self.edges[owner]:
                self.edges[owner].append(edge)

    # -- reading ----------------------------------------------------------------------------------------------

    def read(self, since: Any | None, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        offsets = self.offsets(since)
        return self._run(offsets, batch_size)

    def _prepare(self, offsets: dict[str, int]) -> storage.Dataset:
        """Define the indexes the rules need; bring the mapping in line with ``offsets``."""
        datasets = self.context.datasets
        for position, name in enumerate(self.names):
            if datasets.exists(name):
                for index in self.indexes[position].values():
                    datasets.ensure_index(name, index)
        datasets.ensure_index(self.internal, _OUTPUT_INDEX)
        internal = datasets.open(self.internal)
        state = internal.get_offset(_STATE_KEY) or {}
        if offsets and state.get("mapped") != offsets:
            checkpoints = state.get("checkpoints") or []
            for i in range(len(checkpoints) - 1, -1, -1):
                if checkpoints[i][0] == offsets:
                    self._roll_back(internal, checkpoints[i][1], {"mapped": offsets, "checkpoints": checkpoints[:i]})
                    break
        return internal

    def _roll_back(self, internal: storage.Dataset, position: int, state: dict[str, Any]) -> None:
        """Undo the mapping records written at internal offset ``position`` or later."""
        touched = dict.fromkeys(e["_id"] for e in internal.iter_entities(position - 1, history=True))
        records = []
        for record_id in touched:
            before = [v for v in internal.versions(record_id) if v["_updated"] < position]
            if before and before[-1].get("_deleted") is not True:
                records.append({"_id": record_id, "output": before[-1]["output"]})
            else:
                records.append({"_id": record_id, "_deleted": True})
        with self.context.datasets.writing(self.internal) as dataset:
            dataset.write(records, offset_key=_STATE_KEY, offset=state)

    def _run(self, offsets: dict[str, int], batch_size: int) -> Iterator[list[dict[str, Any]]]:
        internal = self._prepare(offsets)
        # the logs' snapshots are taken before any pass's, so a pass always sees data at least as new as the log
        logs = [self._log(index, dataset, offsets.get(name)) for index, name, dataset in self.open_datasets()]
        done: set[Key] = set()  # resolved in an earlier batch of this run
        stamped = dict(offsets)
        last: Key | None = None
        work = _Pass(self, internal)
        try:
            for _ts, position, seq, entity_id in heapq.merge(*logs):
                offsets[self.names[position]] = seq
                last = (position, entity_id)
                if last in done or last in work.assigned:
                    continue
                work.resolve(last)
                if len(work.out) >= batch_size:
                    batch = work.finish(offsets)
                    done.update(work.assigned)
                    stamped = dict(offsets)
                    work = _Pass(self, internal)
                    yield batch
            if last is not None and offsets != stamped:
                if not work.out:  # only already-resolved changes since the last batch: carry the offset anyway
                    work.resolve(last)
                yield work.finish(offsets)
        finally:
            work.close()
            for log in logs:
                log.close()

    @staticmethod
    def _log(position: int, dataset: storage.Dataset, since: int | None) -> Generator[_Change, None, None]:
        """The ids of the dataset's latest versions after ``since``, as ``(_ts, position, offset, _id)``."""
        stored = dataset.iter_stored(since, history=False, deleted=True)  # takes its snapshot now

        def changes() -> Generator[_Change, None, None]:
            try:
                for seq, data in stored:
                    entity = storage.loads(data)
                    yield entity.get("_ts", 0), position, seq, entity["_id"]
            finally:
                stored.close()  # type: ignore[attr-defined]

        return changes()

    # -- output -----------------------------------------------------------------------------------------------

    def output_id(self, members: list[tuple[Key, dict[str, Any]]]) -> str:
        if self.identity == "first":
            return members[0][0][1]
        return "|".join(f"{position}|{entity_id}" for (position, entity_id), _entity in members)

    def identifier(self, position: int, entity_id: str) -> str:
        """A member's id as an NI in its dataset's namespace (``~:erp-customer:11``); an id that already has
        it (or, with namespaced identifiers, any namespace) keeps it rather than getting it twice."""
        namespace = self.names[position]
        if entity_id.startswith(f"{namespace}:") or (self.namespaced and ":" in entity_id):
            return f"~:{entity_id}"
        return f"~:{namespace}:{entity_id}"

    def combine(self, output_id: str, members: list[tuple[Key, dict[str, Any]]]) -> dict[str, Any]:
        """The merged entity of ``members`` (sorted by dataset position, then id)."""
        ids: list[Any] = []
        for (position, entity_id), entity in members:
            own = entity.get("$ids")
            if own is None:
                ids.append(self.identifier(position, entity_id))
            else:
                ids.extend(own if isinstance(own, list) else [own])
        merged: dict[str, Any] = {"_id": output_id, "$ids": _unique(ids)}
        if self.strategy == "list":
            keep = self.internal_properties
            merged["$merged"] = [{k: v for k, v in entity.items() if keep or k[:1] != "_" or k == "_id"}
                                 for _key, entity in members]
            return merged
        values: dict[str, list[Any]] = {}
        for _key, entity in members:
            for name, value in entity.items():
                if name[:1] != "_" and name != "$ids":
                    values.setdefault(name, []).append(value)
        for name, found in values.items():
            if self.strategy == "compact":
                flat = _unique(_flatten(found))
                if flat:
                    merged[name] = flat[0] if len(flat) == 1 else flat
            else:
                merged[name] = found[0] if len(found) == 1 else _flatten(found)
        return merged


class _Pass:
    """One batch of resolution: the clusters of some changed entities, read from one snapshot per dataset."""

    def __init__(self, source: MergeSource, internal: storage.Dataset) -> None:
        self.source = source
        self.internal = internal
        self.views: dict[int, tuple[storage.Dataset, Any]] = {}
        for position, _name, dataset in source.open_datasets():
            self.views[position] = (dataset, dataset.snapshot())
        self.assigned: dict[Key, str | None] = {}  # new output id (None: the source entity is gone)
        self.previous: dict[str, None] = {}  # output ids the assigned entities had before
        self.out: list[dict[str, Any]] = []
        self.emitted: set[str] = set()

    def close(self) -> None:
        for _dataset, view in self.views.values():
            view.close()
        self.views = {}

    def _get(self, key: Key) -> dict[str, Any] | None:
        found = self.views.get(key[0])
        return None if found is None else found[0].get(key[1], snapshot=found[1])

    def _record_id(self, key: Key) -> str:
        return f"{self.source.names[key[0]]} {key[1]}"

    def _old_output(self, key: Key) -> str | None:
        record = self.internal.get(self._record_id(key))
        return None if record is None or record.get("_deleted") is True else record.get("output")

    def _old_members(self, output_id: str) -> list[Key]:
        positions = {name: i for i, name in enumerate(self.source.names)}
        members = []
        for record_id in self.internal.lookup(_OUTPUT_INDEX.key, index_token(output_id)):
            name, _sep, entity_id = record_id.partition(" ")
            if name in positions:
                members.append((positions[name], entity_id))
        return members

    def cluster(self, start: Key) -> list[tuple[Key, dict[str, Any]]]:
        """``start`` and every live entity equal to it, transitively; a deleted entity stays alone."""
        entity = self._get(start)
        if entity is None:
            return []
        found = {start: entity}
        if entity.get("_deleted") is True:
            return [(start, entity)]
        queue = [start]
        limit = self.source.max_merged
        while queue:
            key = queue.pop()
            typed = storage.decode(found[key])
            for edge in self.source.edges[key[0]]:
                target = self.views.get(edge.target)
                if target is None:
                    continue
                dataset, view = target
                for value in edge.own.values(typed):
                    for entity_id in dataset.lookup(edge.other.key, index_token(value), snapshot=view):
                        other = (edge.target, entity_id)
                        if other in found:
                            continue
                        candidate = dataset.get(entity_id, snapshot=view)
                        if candidate is None or candidate.get("_deleted") is True:
                            continue
                        found[other] = candidate
                        queue.append(other)
                        if len(found) > limit:
                            raise RuntimeError(f"more than max_merged ({limit}) entities would merge into one "
                                               f"(starting from {self._record_id(start)!r})")
        return sorted(found.items())

    def resolve(self, start: Key) -> None:
        """Recompute ``start``'s cluster and every cluster that shared an output id with one of its members."""
        pending = [start]
        while pending:
            key = pending.pop()
            if key in self.assigned:
                continue
            members = self.cluster(key)
            if not members:
                members_keys: list[Key] = [key]
                output_id = None
            else:
                members_keys = [k for k, _e in members]
                output_id = self.source.output_id(members)
                entity = self.source.combine(output_id, members)
                if members[0][1].get("_deleted") is True:
                    entity["_deleted"] = True
                self.out.append(entity)
                self.emitted.add(output_id)
            for member in members_keys:
                self.assigned[member] = output_id
                old = self._old_output(member)
                if old is not None and old not in self.previous:
                    self.previous[old] = None
                    pending.extend(k for k in self._old_members(old) if k not in self.assigned)

    def finish(self, offsets: dict[str, int]) -> list[dict[str, Any]]:
        """The batch: outputs, then ``$replaced`` deletes; stamps the offset and writes the mapping."""
        for output_id in self.previous:
            if output_id not in self.emitted:
                self.out.append({"_id": output_id, "_deleted": True, "$replaced": True})
        for entity in self.out:
            entity["_updated"] = dict(offsets)
        records = [{"_id": self._record_id(key), "output": output_id} if output_id is not None
                   else {"_id": self._record_id(key), "_deleted": True} for key, output_id in self.assigned.items()]
        with self.source.context.datasets.writing(self.source.internal) as internal:
            state = internal.get_offset(_STATE_KEY) or {}
            checkpoints = (state.get("checkpoints") or [])[-(_MAX_CHECKPOINTS - 1):]
            checkpoints.append([state.get("mapped"), internal.next_offset])
            internal.write(records, offset_key=_STATE_KEY,
                           offset={"mapped": dict(offsets), "checkpoints": checkpoints})
        self.close()
        return self.out


def _rebase(expr: Any, aliases: dict[str, int], used: set[str]) -> Any:
    """``expr`` with ``<alias>.path`` strings as ``_S.path``; the aliases and variables met go to ``used``."""
    if type(expr) is str:
        head, dot, rest = expr.partition(".")
        if dot and head in aliases:
            used.add(head)
            return "_S." + rest
        if dot and head in _VARIABLES:
            used.add(head)
        return expr
    if type(expr) is list and expr and expr[0] != "literal":
        return [_rebase(item, aliases, used) for item in expr]
    return expr


def _flatten(values: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for value in values:
        if isinstance(value, list):
            flat.extend(value)
        else:
            flat.append(value)
    return flat


def _unique(values: list[Any]) -> list[Any]:
    seen: set[bytes] = set()
    out = []
    for value in values:
        key = storage.canonical(value)
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out
