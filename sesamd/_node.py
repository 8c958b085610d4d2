"""The node: data directory, stored config, and one supervised pipe actor per pipe.

:func:`open_node` opens the data directory (datasets and node store), starts the supervisor and the event
bus, and applies the stored config. :meth:`Node.apply_config` validates an upload (structure, ``$ENV`` and
``$SECRET``, each pipe through the engine's component specs), stores it, and applies it as a diff by entity
hash: new pipes start, removed ones stop, changed ones restart, unchanged ones keep running undisturbed.

The engine (runners, datasets) and the pump (pipe actors) are reached through :class:`Engine`, so tests
can substitute small fakes. The node keeps each pipe actor's :class:`~actors.PipeRef` and drives it only
through its mailbox (the message protocol: :mod:`actors._pump`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import trio

import storage
from actors import (
    DatasetWrite,
    DatasetWriters,
    HoldSchedule,
    PipeActor,
    PipeRef,
    Runner,
    StopScheduling,
    Supervisor,
    Wake,
    pump_json,
    start_pipe,
)
from actors.components._clock import FROZEN_TIME, FROZEN_TIME_ENV

from . import __version__
from ._changes import DatasetChanges
from ._compaction import Compactions
from ._config import (
    ConfigValidationError,
    SubstitutionError,
    config_error,
    diff,
    entity_hash,
    entity_kind,
    json_path,
    secret_names,
    substitute,
    unresolved,
    validate_structure,
)
from ._config_breaker import check_config_deletions
from ._feed import EventFeed, FeedLogHandler
from ._receiver import Receivers
from ._run_all import RunAllPipes
from ._run_all_plan import is_user_pipe
from ._systems import SystemRegistry, scoped_secrets

__all__ = ["Engine", "Node", "PipeState", "UnknownPipe", "default_engine", "open_node"]

log = logging.getLogger("sesamd.node")

EXECUTION_DATASET = "system:pump_execution:{}"
CONFIG_HISTORY = "system:config"  # every accepted version of each config entity (display form)


class UnknownPipe(KeyError):
    """No pipe with this id."""


@dataclass
class Engine:
    """How the node builds and runs pipes (the real engine and pump, or test doubles).

    ``build_runner(config, datasets, metadata)`` compiles a pipe into a :class:`~actors.Runner` (raising one
    of ``config_errors`` naming the path); ``make_actor(pipe_id, runner, node)`` returns its
    :class:`~actors.PipeActor`, which the node starts under its supervisor and then only sends messages.
    """

    make_datasets: Callable[[storage.DataDir], Any]
    build_runner: Callable[[dict[str, Any], Any, dict[str, Any] | None], Runner]
    make_actor: Callable[[str, Runner, Node], PipeActor]
    make_events: Callable[[], Any]
    config_errors: tuple[type[BaseException], ...] = (ValueError,)


def default_engine() -> Engine:
    """The engine of ``actors`` (imported here so the node module loads without it)."""
    from actors import _datasets, _engine, _events, _pump
    from actors.components import ConfigError

    def make_actor(pipe_id: str, runner: Any, node: Node) -> PipeActor:
        return _pump.PipeActor(runner, store=node.store, datasets=node.datasets, bus=node.events,
                               limiter=node.run_limiter, scheduler_enabled=node.schedules(pipe_id, runner),
                               writers=node.writers)

    return Engine(
        make_datasets=_datasets.Datasets,
        build_runner=_engine.build_runner,
        make_actor=make_actor,
        make_events=_events.EventBus,
        config_errors=(ConfigError,),
    )


@dataclass
class PipeState:
    """A configured pipe: its config as uploaded and as run, its runner, and its current actor."""

    id: str
    original: dict[str, Any]
    effective: dict[str, Any]
    hash: str
    runner: Runner | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    actor: PipeRef | None = None  # the address of its running actor

    @property
    def actor_name(self) -> str:
        return f"pipe:{self.id}"

    @property
    def is_valid(self) -> bool:
        return self.runner is not None and not self.errors


@dataclass
class _Plan:
    """A validated config, ready to apply."""

    entities: list[dict[str, Any]]
    pipes: dict[str, PipeState]
    errors: list[dict[str, Any]]


class Node:
    """A running node; use :func:`open_node`. All methods run in the node's Trio run."""

    def __init__(self, data_dir: str | Path, engine: Engine | None = None, *,
                 dataset_options: storage.LevelDBOptions | None = None) -> None:
        self.data_dir = storage.DataDir(data_dir, options=dataset_options)  # None: the node profile
        self.engine = engine or default_engine()
        self.store = self.data_dir.open_node_store()
        self.datasets = self.engine.make_datasets(self.data_dir)
        self.events = self.engine.make_events()
        self.changes = DatasetChanges(self.events.publish)  # dataset-changed events, coalesced
        self.events.add_listener(self.changes.run_ended)  # (before the feed: a run's commits come before its end)
        self.feed = EventFeed(self.events)  # numbered, buffered events for GET /api/events
        self._writer_of: dict[str, str] = {}  # sink dataset -> the pipe writing it (dataset-changed events)
        self.writers = DatasetWriters(self.datasets, on_commit=self._dataset_changed)
        self.started_at = datetime.now(UTC)
        self.node_id = self._node_id()
        self.version = __version__
        self.pipes: dict[str, PipeState] = {}
        self.accepting_runs = True
        self.run_limiter = trio.CapacityLimiter(max(2, min(8, os.cpu_count() or 2)))
        self._entities: list[dict[str, Any]] = []  # in upload order, wire form
        self._displays: dict[str, Any] = {}  # id -> the entity exactly as uploaded (display form)
        self._load_config()
        self._supervisor: Supervisor | None = None
        self._lock = trio.Lock()
        self.systems = SystemRegistry()  # system actors (clients, pools), applied with the config
        self.receivers = Receivers(self)  # POST /api/receivers/<pipe>/entities into http_endpoint pipes
        self.run_all = RunAllPipes(self)  # the test scheduler: POST /api/pipes/run-all-pipes and friends
        self.compactions = Compactions(self)  # sink-dataset compaction: scheduled (a task) and on demand
        self._schedules_held = False
        self._tasks: trio.Nursery | None = None  # the node's own background tasks (set by open_node)

    # -- store -------------------------------------------------------------------------------------

    def _node_id(self) -> str:
        node_id = self.store.get("meta", "node-id")
        if node_id is None:
            node_id = os.urandom(8).hex()
            self.store.put("meta", "node-id", node_id)
        return str(node_id)

    def _load_config(self) -> None:
        stored = []
        for _name, value in self.store.items("config"):
            if "entity" not in value:  # stored before upload order and display forms were kept
                value = {"position": 1 << 30, "entity": value, "display": value}
            stored.append(value)
        stored.sort(key=lambda v: (v["position"], v["entity"].get("_id", "")))
        self._entities = [v["entity"] for v in stored]
        self._displays = {v["entity"]["_id"]: v["display"] for v in stored}

    @property
    def env(self) -> dict[str, Any]:
        return dict(self.store.items("env"))

    @property
    def secrets(self) -> dict[str, Any]:
        return dict(self.store.items("secret"))

    @property
    def system_secrets(self) -> dict[str, dict[str, Any]]:
        """Each system's own secrets by system id (``/api/systems/{id}/secrets``): name -> value."""
        return dict(self.store.items("system-secret"))

    async def reload_system(self, system_id: str) -> None:
        """Close and reopen a system's clients and pools (not while a config is being applied)."""
        async with self._lock:
            await self.systems.reload(system_id)

    def config(self) -> list[dict[str, Any]]:
        """The config entities in upload order, in wire form (what :meth:`apply_config` takes)."""
        return list(self._entities)

    def uploaded_config(self) -> list[Any]:
        """The config entities in upload order, exactly as uploaded (display form, see ``_config``)."""
        return [self._displays.get(e["_id"], e) for e in self._entities]

    def uploaded_entity(self, entity_id: str) -> Any | None:
        entity = self.config_entity(entity_id)
        return None if entity is None else self._displays.get(entity_id, entity)

    def config_entity(self, entity_id: str) -> dict[str, Any] | None:
        return next((e for e in self._entities if e.get("_id") == entity_id), None)

    @property
    def metadata(self) -> dict[str, Any]:
        """The service metadata entity as uploaded (empty when there is none)."""
        return self.config_entity("node") or {}

    @property
    def developer_mode(self) -> bool:
        """Whether the clients' test workflow (run-all-pipes, resets) is allowed: metadata ``developer_mode``
        (default true on a self-hosted node)."""
        return self.metadata.get("developer_mode", True) is not False

    @property
    def scheduler_enabled(self) -> bool:
        """False when ``task_manager.disable_pump_scheduler`` is set (metadata) or the node is stopping."""
        task_manager = self.metadata.get("task_manager") or {}
        return self.accepting_runs and not (isinstance(task_manager, dict)
                                            and task_manager.get("disable_pump_scheduler") is True)

    def spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` as a background task of the node (it ends when the node closes)."""
        if self._tasks is None:
            raise RuntimeError("the node is not open (use open_node)")
        self._tasks.start_soon(fn, *args)

    def hold_schedules(self, held: bool) -> None:
        """Hold (or release) the pumps' own schedules and dependency signals, also of pipes (re)started
        meanwhile, while the test scheduler drives the pipes (:mod:`sesamd._run_all`)."""
        self._schedules_held = held
        for state in self.pipes.values():
            if state.actor is not None:
                self._notify(state.actor, HoldSchedule(held))

    def _notify(self, ref: PipeRef, message: Wake | HoldSchedule | StopScheduling) -> None:
        """Send a notice to a pipe actor without waiting (from a task of the node's when its mailbox is full)."""
        if not ref.notify(message) and self._tasks is not None:
            self._tasks.start_soon(ref.tell, message)

    def schedules(self, pipe_id: str, runner: Any) -> bool:
        """Whether a pipe's pump schedules itself: the node scheduler is on and, for a user pipe, metadata
        ``task_manager.disable_user_pipes`` is not true (the client sets it on upload, client-spec 5.3, so
        that only the test scheduler runs them; a manual start still works)."""
        task_manager = self.metadata.get("task_manager") or {}
        disabled = isinstance(task_manager, dict) and task_manager.get("disable_user_pipes") is True
        return self.scheduler_enabled and not (disabled and is_user_pipe(pipe_id, runner.original))

    # -- pipes -------------------------------------------------------------------------------------

    def pipe(self, pipe_id: str) -> PipeState:
        state = self.pipes.get(pipe_id)
        if state is None:
            raise UnknownPipe(pipe_id)
        return state

    def actor_status(self, pipe_id: str) -> Any | None:
        state = self.pipe(pipe_id)
        if self._supervisor is None or state.actor_name not in self._supervisor:
            return None
        return self._supervisor.status(state.actor_name)

    async def operate(self, pipe_id: str, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Run a pump operation; the pump raises its conflict/operation errors."""
        state = self.pipe(pipe_id)
        if state.actor is None:
            raise PipeUnavailable(pipe_id, state)
        if operation in ("start", "start-rescan") and not self.accepting_runs:
            raise PipeUnavailable(pipe_id, state, "the node is shutting down and takes no new runs")
        status = await state.actor.operate(operation, dict(params))
        assert state.runner is not None
        return pump_json(status, state.runner)

    def pump_json(self, pipe_id: str) -> dict[str, Any]:
        """The pipe's pump object: its actor's published status with the runner's offset and queues."""
        state = self.pipe(pipe_id)
        if state.actor is not None and state.runner is not None:
            return pump_json(state.actor.status, state.runner)
        return {"_id": f"pump:{pipe_id}", "runtime": {
            "is-running": False, "is-disabled": False, "is-valid-config": state.is_valid,
            "config-errors": state.errors, "supported-operations": [], "last-seen": None,
            "last-run": None, "next-run": None, "success": None, "queues": {"source": 0, "dependencies": {}},
        }}

    # -- config ------------------------------------------------------------------------------------

    async def apply_config(self, entities: Any, *, force: bool = False, displays: Mapping[str, Any] | None = None,
                           check: Collection[str] | None = None) -> list[dict[str, Any]]:
        """Validate, store and apply a whole config (wire form, in upload order); returns the errors kept.

        Without ``force`` an error rejects the upload (ConfigValidationError) and nothing changes; with
        ``check`` only errors of those entity ids do (an edit of one pipe is not refused for another's
        error). With ``force`` everything that can be identified is stored, and invalid entities are kept,
        not running, with their errors. ``displays`` holds entities exactly as uploaded (display form, by
        id); an entity without one keeps its earlier display form while its wire form is unchanged.
        """
        async with self._lock:
            check_config_deletions(self._entities, entities, self.metadata)  # before any planning work
            plan = await self._plan(entities)
            refusing = plan.errors if check is None else [
                e for e in plan.errors if _entity_of(e, plan.entities) in check]
            if refusing and not force:
                raise ConfigValidationError(refusing)
            shown = {}
            current = {e["_id"]: e for e in self._entities}
            for entity in plan.entities:
                entity_id = entity["_id"]
                if displays is not None and entity_id in displays:
                    shown[entity_id] = displays[entity_id]
                elif entity_id in self._displays and current.get(entity_id) == entity:
                    shown[entity_id] = self._displays[entity_id]
                else:
                    shown[entity_id] = entity
            records = [(e["_id"], {"position": i, "entity": e, "display": shown[e["_id"]]})
                       for i, e in enumerate(plan.entities)]
            await trio.to_thread.run_sync(lambda: self.store.put_many("config", records, replace=True))
            removed = [entity_id for entity_id in self._displays if entity_id not in shown]
            self._entities, self._displays = list(plan.entities), shown
            for state in plan.pipes.values():
                state.original = shown.get(state.id, state.original)
            await self._switch(plan.pipes)
            await self._record_history(shown, removed)
            return plan.errors

    async def validate_config(self, entities: Any) -> list[dict[str, Any]]:
        """The errors :meth:`apply_config` would find in ``entities``; nothing is stored or started
        (``sesamd lint``)."""
        async with self._lock:
            try:
                return (await self._plan(entities)).errors
            except ConfigValidationError as exc:
                return exc.errors

    async def _record_history(self, shown: dict[str, Any], removed: list[str]) -> None:
        """Append the changed entities to the config history (change tracking keeps one version per change);
        the history is a record, so a failure to write it is logged and does not undo the upload."""
        entities = [*(dict(entity) for entity in shown.values()), *({"_id": i, "_deleted": True} for i in removed)]
        try:
            await self.writers.apply(DatasetWrite(CONFIG_HISTORY, lambda dataset: dataset.write(entities)))
        except Exception:
            log.exception("recording the config history in %s failed", CONFIG_HISTORY)

    async def _plan(self, entities: Any) -> _Plan:
        errors = validate_structure(entities)
        unrunnable = _unrunnable(entities, errors)
        if unrunnable is None:  # an error on no entity, or on one that cannot even be identified
            raise ConfigValidationError(errors)
        stored, entities = entities, [e for e in entities if e["_id"] not in unrunnable]
        env, secrets = self.env, self.secrets
        own_secrets = self.system_secrets  # each system's own secrets win over the global ones (node-spec 3.4)
        positions = {e["_id"]: i for i, e in enumerate(stored)}
        resolved: dict[str, Any] = {}
        for entity in entities:
            entity_id, where = entity["_id"], f"$[{positions[entity['_id']]}]"
            kind = entity_kind(entity)
            if kind != "system" and secret_names(_without_dtl_rules(entity)):
                errors.append(config_error(where, f"'{entity_id}': $SECRET(...) is only allowed in system config "
                                                  "and as a key or password of the DTL crypto functions"))
                continue
            try:
                resolved[entity_id] = substitute(entity, env, scoped_secrets(secrets, own_secrets.get(entity_id))
                                                 if kind == "system" else None, where)
            except SubstitutionError as exc:
                errors.append(config_error(exc.path, f"'{entity_id}': {exc}"))
        metadata = _with_frozen_time(resolved.get("node", {}), env)
        metadata_runtime = {k: v for k, v in metadata.items() if k not in ("_id", "type")} or None
        systems = {k: v for k, v in resolved.items() if entity_kind(v) == "system"}
        errors.extend(self.systems.plan(entities, resolved, errors, env, secrets, own_secrets, positions))
        pipes: dict[str, PipeState] = {}
        for entity in entities:
            if entity["type"] != "pipe":
                continue
            pipe_id, where = entity["_id"], f"$[{positions[entity['_id']]}]"
            config = resolved.get(pipe_id)
            effective = substitute(entity, env, None) if config is not None else entity
            state = PipeState(pipe_id, entity, effective, "")
            if config is None:
                state.errors = [e for e in errors if e["elements"].startswith(where)]
                pipes[pipe_id] = state
                continue
            used = sorted(_referenced_systems(config) & systems.keys())
            dtl_secrets = {name: secrets[name] for name in sorted(secret_names(config)) if name in secrets}
            state.hash = entity_hash(config, metadata, [systems[s] for s in used], dtl_secrets)
            running = self.pipes.get(pipe_id)
            if running is not None and running.hash == state.hash and running.is_valid:
                pipes[pipe_id] = running
                running.original = entity
                continue
            state.errors = await self._build(state, config, metadata_runtime, where, dtl_secrets,
                                             self.systems.planned_systems(used))
            state.errors += _missing_systems(pipe_id, where, config, self.systems.planned_ids())
            errors.extend(state.errors)
            pipes[pipe_id] = state
        return _Plan(list(stored), pipes, errors)

    async def _build(self, state: PipeState, config: dict[str, Any], metadata: dict[str, Any] | None,
                     where: str, secrets: dict[str, Any], systems: dict[str, Any]) -> list[dict[str, Any]]:
        build = self.engine.build_runner
        if secrets:  # only pipes whose DTL names secrets get them
            build = partial(build, secrets=secrets)
        if systems:  # and only pipes that name systems get those
            build = partial(build, systems=systems)
        try:
            state.runner = await trio.to_thread.run_sync(build, config, self.datasets, metadata)
        except self.engine.config_errors as exc:
            return [_pipe_error(state.id, where, str(exc), getattr(exc, "where", ""))]
        effective = state.runner.config
        if isinstance(effective, dict) and not secret_names(state.original):
            state.effective = effective
        return []

    async def _switch(self, pipes: dict[str, PipeState]) -> None:
        """Stop removed and changed pipes, start new and changed ones; unchanged ones are left alone."""
        old = {k: (v.hash if v.is_valid else "") for k, v in self.pipes.items()}
        new = {k: (v.hash if v.is_valid else "-") for k, v in pipes.items()}
        change = diff(old, new)
        async with trio.open_nursery() as nursery:
            for pipe_id in change.removed + change.changed:
                nursery.start_soon(self._stop_pipe, self.pipes[pipe_id])
        await self.systems.switch(self._supervisor)  # after the pipes that used changed systems stopped
        self.pipes = pipes
        self._writer_of = {sink: s.id for s in pipes.values() if s.runner is not None
                           and isinstance(sink := s.runner.sink_dataset, str)}
        for pipe_id in change.added + change.changed:
            await self._load_pipe(pipes[pipe_id])
            self._start_pipe(pipes[pipe_id])
        if change.added or change.removed or change.changed:
            log.info("config applied: %d added, %d removed, %d changed, %d unchanged", len(change.added),
                     len(change.removed), len(change.changed), len(change.unchanged))
            self.events.publish({"type": "config-applied", "added": list(change.added),
                                 "removed": list(change.removed), "changed": list(change.changed)})

    async def _load_pipe(self, state: PipeState) -> None:
        """Apply the writes a pipe asks for when it is loaded or configured (``set_initial_offset: onload``,
        its dead-letter dataset)."""
        for write in state.runner.load_writes() if state.is_valid and state.runner is not None else ():
            try:
                await self.writers.apply(write)
            except Exception as exc:  # the pipe still starts; its sink is just not marked populated
                log.error("pipe %s: applying its load write to dataset %s failed: %s", state.id, write.dataset,
                          exc)

    def _start_pipe(self, state: PipeState) -> None:
        if not state.is_valid or self._supervisor is None or state.runner is None:
            return
        actor = self.engine.make_actor(state.id, state.runner, self)
        state.actor = start_pipe(self._supervisor, state.actor_name, actor)  # a restart reuses the actor
        if self._schedules_held:
            self._notify(state.actor, HoldSchedule(True))  # (its mailbox is empty: this never waits)

    async def _stop_pipe(self, state: PipeState, grace: float = 30.0) -> None:
        """Stop a pipe's actor; a run in progress first stops after its current batches commit."""
        if state.actor is not None:
            with trio.move_on_after(grace):
                await self.stop_run(state.actor)
        if self._supervisor is not None:
            await self._supervisor.stop(state.actor_name)
        state.actor = None

    def _on_supervisor_event(self, kind: str, data: dict[str, Any]) -> None:
        (log.info if kind == "actor-restarted" else log.warning)("%s: %s", kind, data)
        event = {"type": kind, **data}
        actor = data.get("actor")
        if isinstance(actor, str) and actor.startswith("pipe:"):
            event["pipe"] = actor[len("pipe:"):]
        self.events.publish(event)

    # -- admin operations (POST /api/admin) ----------------------------------------------------------

    async def restart(self) -> None:
        """Stop every pipe and system actor and start them anew from the stored config; the node's start
        time moves on (the clients watch it to see a restart). A run-all-pipes run stops first."""
        await self.run_all.stop(30.0)
        async with trio.open_nursery() as nursery:
            for state in self.pipes.values():
                nursery.start_soon(self._stop_pipe, state)
        self.pipes = {}
        for system in self.systems.systems.values():
            system.hash = ""  # so the next plan sees each system changed, and restarts it
        await self.apply_config(self._entities, force=True)
        self.started_at = datetime.now(UTC)

    async def reset(self) -> None:
        """Wipe the node: every config entity, dataset, variable and secret (its key and users stay); a
        run-all-pipes run stops first."""
        await self.run_all.stop(30.0)
        await self.apply_config([], force=True)
        for name in self.datasets.names():
            await self.writers.delete(name)
        for kind in ("env", "secret", "system-secret", "pump"):
            await trio.to_thread.run_sync(lambda kind=kind: self.store.put_many(kind, [], replace=True))
        self.started_at = datetime.now(UTC)

    # -- life cycle --------------------------------------------------------------------------------

    async def _boot(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor
        self.writers.attach(supervisor)
        if self._entities:
            try:
                errors = await self.apply_config(self._entities, force=True)
            except ConfigValidationError as exc:
                errors = exc.errors
            for error in errors:
                log.error("stored config: %s (%s)", error["msg"], error["elements"])

    def _dependents(self, dataset: str) -> list[PipeState]:
        """Pipes that read ``dataset`` (as their source or through hops)."""
        found = []
        for state in self.pipes.values():
            runner = state.runner
            if runner is None or state.actor is None:
                continue
            if dataset in runner.source_datasets or dataset in runner.tracked_datasets:
                found.append(state)
        return found

    def _dataset_changed(self, dataset: str) -> None:
        """A dataset actor committed new versions: wake the pipes that read the dataset and whose effective
        signalling setting is on (node-spec 5.2; the runner's ``signalling``), in the middle of the writer's
        run already. Reports the commit for a ``dataset-changed`` event (coalesced: :mod:`sesamd._changes`)."""
        try:
            opened = self.datasets.get(dataset)
            offset = opened.next_offset - 1 if opened is not None else None
        except Exception:
            offset = None
        self.changes.committed(dataset, offset, self._writer_of.get(dataset))
        if not self.accepting_runs:
            return
        for state in self._dependents(dataset):
            assert state.runner is not None and state.actor is not None
            if state.runner.sink_dataset != dataset and state.runner.signalling:
                self._notify(state.actor, Wake())  # (never a pipe with its own output)

    async def stop_runs(self, grace: float = 30.0) -> None:
        """Stop taking new runs; running ones stop after their current batch commits (within ``grace``)."""
        self.accepting_runs = False
        self.run_all.request_stop("the node is shutting down")
        actors = [s.actor for s in self.pipes.values() if s.actor is not None]
        for actor in actors:
            self._notify(actor, StopScheduling())
        with trio.move_on_after(grace):
            async with trio.open_nursery() as nursery:
                for actor in actors:
                    nursery.start_soon(self.stop_run, actor)

    @staticmethod
    async def stop_run(actor: PipeRef) -> None:
        """Stop the pipe's run in progress after its current batches and wait until its pump is idle."""
        if actor.running:
            await actor.stop()
        await actor.wait_idle()

    def close(self) -> None:
        """Close datasets and the node store (after every task using them has ended)."""
        self.events.close()
        self.datasets.close_all()
        self.store.close()


class PipeUnavailable(RuntimeError):
    """The pipe exists but has no running pump (invalid config, restarting, or shutting down)."""

    def __init__(self, pipe_id: str, state: PipeState, reason: str | None = None) -> None:
        if reason is None:
            reason = ("its config is invalid: " + "; ".join(e["msg"] for e in state.errors)) if state.errors \
                else "its pump is not running"
        super().__init__(f"pipe '{pipe_id}' cannot run: {reason}")
        self.pipe_id = pipe_id


def _with_frozen_time(metadata: dict[str, Any], env: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata with ``frozen_time`` from the env variable ``node-frozen-time`` when it sets none (the
    test profile's ``test-env.json`` may freeze DTL's ``now`` that way: ``actors.components._clock``)."""
    value = env.get(FROZEN_TIME_ENV)
    if metadata.get(FROZEN_TIME) not in (None, "") or value in (None, ""):
        return metadata
    return {"_id": "node", "type": "metadata", **metadata, FROZEN_TIME: value}


def _pipe_error(pipe_id: str, where: str, message: str, path: str = "") -> dict[str, Any]:
    text = message if f"pipe {pipe_id}" in message or f"'{pipe_id}'" in message else f"pipe '{pipe_id}': {message}"
    elements = where
    inner = path.split(": ", 1)[-1] if path else ""
    if inner and not inner.startswith("pipe "):
        elements = json_path(where, *[int(p) if p.isdigit() else p for p in inner.replace("[", ".").replace(
            "]", "").split(".") if p])
    return config_error(elements, text)


def _without_dtl_rules(entity: dict[str, Any]) -> dict[str, Any]:
    """A pipe without the rules of its DTL transforms, nested ones included (where ``$SECRET`` crypto keys may
    appear)."""

    def strip(component: Any) -> Any:
        if not isinstance(component, dict):
            return component
        if component.get("type") == "dtl":
            return {k: v for k, v in component.items() if k != "rules"}
        nested = {key: [strip(t) for t in value] if isinstance(value, list) else strip(value)
                  for key, value in component.items() if key == "transforms"}
        alternatives = component.get("alternatives")
        if isinstance(alternatives, dict):
            nested["alternatives"] = {name: strip(t) for name, t in alternatives.items()}
        return {**component, **nested}

    transforms = entity.get("transform")
    if transforms is None:
        return entity
    listed = transforms if isinstance(transforms, list) else [transforms]
    return {**entity, "transform": [strip(t) for t in listed]}


def _missing_systems(pipe_id: str, where: str, config: dict[str, Any], defined: set[str]) -> list[dict[str, Any]]:
    """Errors for the ``system`` of the pipe's source, sink or transforms that no system entity defines (one
    still naming a variable is in a conditional alternative not chosen, and is never used)."""
    errors = []
    for path, system_id in _component_systems(config):
        if system_id not in defined and not unresolved(system_id):
            errors.append(config_error(json_path(where, *path), f"pipe '{pipe_id}': its {path[0]} refers to "
                                       f"the system '{system_id}', which is not in the config (no system entity "
                                       f"has that _id: it may have been deleted)"))
    return errors


def _component_systems(config: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """``(path, system id)`` of each ``system`` property of the pipe's source, transforms and sink, and of the
    components nested in them (``chained`` transforms, ``conditional`` alternatives)."""
    found: list[tuple[tuple[str | int, ...], str]] = []

    def visit(component: Any, path: tuple[str | int, ...]) -> None:
        if not isinstance(component, dict):
            return
        if isinstance(component.get("system"), str):
            found.append(((*path, "system"), component["system"]))
        nested = component.get("transforms")
        for index, item in enumerate(nested) if isinstance(nested, list) else []:
            visit(item, (*path, "transforms", index))
        if isinstance(nested, dict):
            visit(nested, (*path, "transforms"))
        alternatives = component.get("alternatives")
        for name, item in alternatives.items() if isinstance(alternatives, dict) else []:
            visit(item, (*path, "alternatives", name))

    for part in ("source", "sink", "transform"):
        value = config.get(part)
        if isinstance(value, list):
            for index, component in enumerate(value):
                visit(component, (part, index))
        else:
            visit(value, (part,))
    return found


def _referenced_systems(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "system" and isinstance(item, str):
                found.add(item)
            else:
                found |= _referenced_systems(item)
    elif isinstance(value, list):
        for item in value:
            found |= _referenced_systems(item)
    return found


_POSITION = re.compile(r"\$\[(\d+)\]")


def _entity_of(error: dict[str, Any], entities: list[dict[str, Any]]) -> str | None:
    """The id of the entity an error's ``elements`` path points into (None: the whole upload)."""
    match = _POSITION.match(error.get("elements", ""))
    if match is None or int(match.group(1)) >= len(entities):
        return None
    entity = entities[int(match.group(1))]
    return entity.get("_id") if isinstance(entity, dict) else None


def _unrunnable(entities: Any, errors: list[dict[str, Any]]) -> set[str] | None:
    """The ids of the entities with structural errors, or None if an error cannot be put on an entity with a
    unique string id (then nothing of the upload can be kept)."""
    if not errors:
        return set()
    if not isinstance(entities, list):
        return None
    ids = [e.get("_id") if isinstance(e, dict) else None for e in entities]
    found: set[str] = set()
    for error in errors:
        match = _POSITION.match(error["elements"])
        if match is None or int(match.group(1)) >= len(ids):
            return None
        entity_id = ids[int(match.group(1))]
        if not isinstance(entity_id, str) or not entity_id or ids.count(entity_id) > 1:
            return None
        found.add(entity_id)
    return found


@asynccontextmanager
async def open_node(data_dir: str | Path, engine: Engine | None = None, *,
                    dataset_options: storage.LevelDBOptions | None = None) -> AsyncIterator[Node]:
    """Open and boot a node; on exit let running runs stop after their current batch, stop its actors, then
    close its datasets and store."""
    node = Node(data_dir, engine, dataset_options=dataset_options)
    log_handler = FeedLogHandler(node.feed, trio.lowlevel.current_trio_token())  # log records into the feed
    logging.getLogger().addHandler(log_handler)
    try:
        async with trio.open_nursery() as nursery, Supervisor(on_event=node._on_supervisor_event) as supervisor:
            node._tasks = nursery
            nursery.start_soon(node.changes.run)
            nursery.start_soon(node.compactions.run)
            await node._boot(supervisor)
            yield node
            await node.stop_runs()  # runs end (and log) while the dataset actors still take their writes
            nursery.cancel_scope.cancel()
    finally:
        logging.getLogger().removeHandler(log_handler)
        node.feed.close()
        node.close()
