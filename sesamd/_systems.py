"""Systems in the node: validated system config entities and one supervised SystemActor per valid system.

The node calls :meth:`SystemRegistry.plan` while it validates an upload (after ``$ENV``/``$SECRET``
substitution) and :meth:`SystemRegistry.switch` when it applies it: systems whose entity hash changed restart
(their clients and pools are closed and made anew), new ones start, removed ones stop and close, and
unchanged ones keep running undisturbed. Secret values never leave this module: errors and runtime status are
scrubbed of them, and configs are shown with the ``$SECRET(name)`` text. A system's own secrets
(``/api/systems/{id}/secrets``, node-spec 3.4) win over global ones of the same name, and are scrubbed alike.

Each system keeps a small ring of its recent lifecycle records (:class:`SystemLog`, ``GET
/api/systems/{id}/logs``): started, restarted for a config change, reload requested, crashed (with the error,
scrubbed), restarted by the supervisor, invalid config. The system types themselves log nothing yet.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import trio

from actors import Reload, Supervisor, SystemActor
from actors.components import ConfigError, System, build_system

from ._config import (
    ConfigDiff,
    SubstitutionError,
    config_error,
    diff,
    entity_hash,
    entity_kind,
    secret_names,
    substitute,
)

__all__ = ["SystemLog", "SystemRegistry", "SystemState", "SystemUnavailable", "UnknownSystem", "scoped_secrets"]

log = logging.getLogger("sesamd.systems")

LOG_LINES = 1000  # records kept per system (the last 1000, as GET /systems/{id}/logs shows by default)


class UnknownSystem(KeyError):
    """No system with this id."""


class SystemUnavailable(RuntimeError):
    """The system exists but cannot run (invalid config, or the node is not running its actors)."""


class SystemLog:
    """The recent lifecycle records of one system: a bounded ring of ``(time, level, message)``."""

    def __init__(self, capacity: int = LOG_LINES) -> None:
        self.records: deque[tuple[datetime, str, str]] = deque(maxlen=capacity)

    def add(self, message: str, level: str = "info") -> None:
        self.records.append((datetime.now(UTC), level, message))

    def lines(self, since: datetime | None = None) -> list[str]:
        """``<ISO time> <LEVEL> <message>`` for each record after ``since`` (all of them without it)."""
        return [f"{_iso(when)} {level.upper()} {message}" for when, level, message in self.records
                if since is None or when > since]


@dataclass
class SystemState:
    """A configured system: its config as uploaded and as run, the built system and its running actor."""

    id: str
    original: dict[str, Any]
    effective: dict[str, Any]
    hash: str = ""
    system: System | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    actor: SystemActor | None = None
    secrets: dict[str, str] = field(default_factory=dict, repr=False)  # value text -> secret name

    @property
    def actor_name(self) -> str:
        return f"system:{self.id}"

    @property
    def is_valid(self) -> bool:
        return self.system is not None and not self.errors

    def redact(self, value: Any) -> Any:
        """``value`` with every secret value used by this system replaced by ``$SECRET(name)``."""
        if not self.secrets:
            return value
        if isinstance(value, str):
            for text in sorted(self.secrets, key=len, reverse=True):
                value = value.replace(text, f"$SECRET({self.secrets[text]})")
            return value
        if isinstance(value, list):
            return [self.redact(v) for v in value]
        if isinstance(value, dict):
            return {k: self.redact(v) for k, v in value.items()}
        return value


class SystemRegistry:
    """The node's systems by id; ``build`` and ``make_actor`` can be replaced in tests."""

    def __init__(self, build: Callable[[dict[str, Any]], System] = build_system,
                 make_actor: Callable[[System], SystemActor] = SystemActor) -> None:
        self.systems: dict[str, SystemState] = {}
        self._build = build
        self._make_actor = make_actor
        self._planned: dict[str, SystemState] | None = None
        self._supervisor: Supervisor | None = None
        self._logs: dict[str, SystemLog] = {}
        self.secrets_lock = trio.Lock()  # the API's read-modify-writes of system secrets take turns

    # -- lookup ------------------------------------------------------------------------------------

    def get(self, system_id: str) -> SystemState:
        state = self.systems.get(system_id)
        if state is None:
            raise UnknownSystem(system_id)
        return state

    def actor(self, system_id: str) -> SystemActor | None:
        """The running actor of a system (None when unknown, invalid or not started)."""
        state = self.systems.get(system_id)
        return state.actor if state is not None else None

    # -- config ------------------------------------------------------------------------------------

    def plan(self, entities: list[dict[str, Any]], resolved: Mapping[str, Any], errors: list[dict[str, Any]],
             env: Mapping[str, Any], secrets: Mapping[str, Any],
             system_secrets: Mapping[str, Mapping[str, Any]] | None = None,
             positions: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
        """Validate the system entities of an upload and remember them for :meth:`switch`; returns new errors.

        ``resolved`` maps ids to substituted configs (a system missing there failed substitution: its errors
        are among ``errors``, matched by JSONPath). ``system_secrets`` are each system's own secrets (by
        system id), which win over the global ``secrets``: both kinds are scrubbed from what is shown.
        ``positions`` are the entities' indexes in the upload (default: their indexes in ``entities``).
        """
        new_errors: list[dict[str, Any]] = []
        planned: dict[str, SystemState] = {}
        for position, entity in enumerate(entities):
            if entity_kind(entity) != "system":
                continue
            system_id = entity["_id"]
            where = f"$[{positions.get(system_id, position) if positions is not None else position}]"
            scoped = scoped_secrets(secrets, (system_secrets or {}).get(system_id))
            state = SystemState(system_id, entity, _shown(entity, env), secrets=_secret_texts(entity, scoped))
            planned[system_id] = state
            config = resolved.get(system_id)
            if config is None:
                state.errors = [e for e in errors if e["elements"] == where or e["elements"].startswith(where + "[")]
                continue
            state.hash = entity_hash(config)
            running = self.systems.get(system_id)
            if running is not None and running.is_valid and running.hash == state.hash:
                planned[system_id] = dataclasses.replace(running, original=entity, secrets=state.secrets,
                                                         effective=_effective(running.system, state.effective))
                continue
            try:
                state.system = self._build(config)
            except ConfigError as exc:
                path = exc.where[1:] if exc.where.startswith("$") else ""
                state.errors = [config_error(where + path, state.redact(f"system '{system_id}': {exc.detail}"))]
            except Exception as exc:  # a bug in a system type: report it on the system, don't fail the upload
                log.exception("building system '%s' failed", system_id)
                state.errors = [config_error(where, state.redact(
                    f"system '{system_id}' could not be built: {type(exc).__name__}: {exc}"))]
            state.effective = _effective(state.system, state.effective)
            new_errors.extend(state.errors)
        self._planned = planned
        return new_errors

    def planned_systems(self, ids: Iterable[str]) -> dict[str, System]:
        """The built systems of the last plan (else of the running config) among ``ids``; invalid ones are left
        out (the pipe's own errors name them)."""
        states = self._planned if self._planned is not None else self.systems
        return {i: state.system for i in ids if (state := states.get(i)) is not None and state.system is not None
                and state.is_valid}

    def planned_ids(self) -> set[str]:
        """The ids of the systems of the last plan (valid or not), else of the running config."""
        return set(self._planned if self._planned is not None else self.systems)

    async def switch(self, supervisor: Supervisor | None) -> ConfigDiff | None:
        """Apply the last plan: stop removed and changed systems, start new and changed ones."""
        planned, self._planned = self._planned, None
        if planned is None:
            return None
        self._supervisor = supervisor
        old = {k: (v.hash if v.is_valid else "") for k, v in self.systems.items()}
        new = {k: (v.hash if v.is_valid else "-") for k, v in planned.items()}
        change = diff(old, new)
        async with trio.open_nursery() as nursery:
            for system_id in change.removed + change.changed:
                nursery.start_soon(self._stop, self.systems[system_id])
        previous, self.systems = self.systems, planned
        for system_id in change.removed:
            self._logs.pop(system_id, None)
        for system_id in change.added + change.changed:
            state, before = planned[system_id], previous.get(system_id)
            if state.errors and (before is None or before.errors != state.errors):
                self.log_of(system_id).add("config invalid, not started: " + "; ".join(
                    e["msg"] for e in state.errors), "error")
            elif state.is_valid:
                self.log_of(system_id).add("config changed: restarting" if before is not None and before.is_valid
                                           else "config applied: starting")
            self._start(state)
        if change.added or change.removed or change.changed:
            log.info("systems applied: %d added, %d removed, %d changed, %d unchanged", len(change.added),
                     len(change.removed), len(change.changed), len(change.unchanged))
        return change

    def _start(self, state: SystemState) -> None:
        if not state.is_valid or self._supervisor is None or state.system is None:
            return
        actor = state.actor = self._make_actor(state.system)
        runs = [0]

        def factory() -> _LoggedActor:  # a restart reuses the actor: it opens again
            runs[0] += 1
            if runs[0] > 1:
                self.log_of(state.id).add(f"restarted by its supervisor (restart {runs[0] - 1})", "warning")
            return _LoggedActor(actor, self, state.id)

        self._supervisor.start(state.actor_name, factory)

    async def _stop(self, state: SystemState) -> None:
        if self._supervisor is not None and state.actor is not None:
            await self._supervisor.stop(state.actor_name)
        state.actor = None

    async def stop_all(self) -> None:
        """Stop every system actor (closing clients and pools)."""
        async with trio.open_nursery() as nursery:
            for state in self.systems.values():
                nursery.start_soon(self._stop, state)

    async def reload(self, system_id: str) -> None:
        """Close and reopen a system's clients and pools (``POST /systems/{id}/reload``): a running actor is
        told to reopen; a crashed, failed or stopped one is replaced by a new one."""
        state = self.get(system_id)
        if not state.is_valid:
            raise SystemUnavailable(f"system '{system_id}' has an invalid config and does not run: "
                                    + "; ".join(e["msg"] for e in state.errors))
        supervisor = self._supervisor
        if supervisor is None:
            raise SystemUnavailable(f"system '{system_id}' does not run: the node runs no system actors")
        self.log_of(system_id).add("reload requested: closing and reopening its clients and pools")
        name = state.actor_name
        if state.actor is not None and name in supervisor and supervisor.status(name).state == "running":
            await supervisor.ref(name).send(Reload())
            return
        await self._stop(state)
        self._start(state)

    def log_of(self, system_id: str) -> SystemLog:
        """The system's log ring (made on first use)."""
        ring = self._logs.get(system_id)
        if ring is None:
            ring = self._logs[system_id] = SystemLog()
        return ring

    def redact(self, system_id: str, value: Any) -> Any:
        """``value`` scrubbed of the secret values the system uses now (as is for an unknown system)."""
        state = self.systems.get(system_id)
        return state.redact(value) if state is not None else value

    # -- API ---------------------------------------------------------------------------------------

    def system_json(self, state: SystemState) -> dict[str, Any]:
        """The API's system object: ``_id``, ``config`` (original, effective) and ``runtime``."""
        runtime: dict[str, Any] = {"is-valid-config": state.is_valid, "config-errors": state.errors}
        if state.actor is not None:
            runtime.update({k: v for k, v in state.actor.status_json().items() if k not in runtime})
            supervisor = self._supervisor
            if supervisor is not None and state.actor_name in supervisor:
                child: Any = supervisor.status(state.actor_name)
                runtime.update({"actor-state": child.state, "actor-restarts": child.restarts,
                                "actor-last-error": child.last_error})
        else:
            runtime["state"] = "stopped" if state.is_valid else "invalid-config"
        return {"_id": state.id, "type": state.original.get("type"),
                "config": {"original": state.original, "effective": state.effective},
                "runtime": state.redact(runtime)}

    def status_json(self, state: SystemState) -> dict[str, Any]:
        """``GET /systems/{id}/status``: whether the system's actor runs with its resources open."""
        actor, child = state.actor, None
        supervisor = self._supervisor
        if actor is not None and supervisor is not None and state.actor_name in supervisor:
            child = supervisor.status(state.actor_name)
        actor_state = child.state if child is not None else None
        shown = actor.status if actor is not None else None  # the actor's published snapshot
        state_name = shown.state if shown is not None else ("stopped" if state.is_valid else "invalid-config")
        status = {
            "_id": state.id,
            "running": shown is not None and shown.state == "open" and actor_state == "running",
            "state": state_name,
            "restarting": actor_state == "restarting",
            "is-valid-config": state.is_valid,
            "config-errors": state.errors,
            "actor-state": actor_state,
            "restarts": child.restarts if child is not None else 0,
            "opens": shown.opens if shown is not None else 0,
            "error": (child.last_error if child is not None else None) or (shown.last_error if shown else None),
        }
        redacted: dict[str, Any] = state.redact(status)
        return redacted

    def list_json(self) -> list[dict[str, Any]]:
        return [self.system_json(self.systems[k]) for k in sorted(self.systems)]


class _LoggedActor:
    """What the supervisor runs for a system: its actor, with a crash or a stop noted in the system's log."""

    def __init__(self, actor: SystemActor, registry: SystemRegistry, system_id: str) -> None:
        self.actor, self.registry, self.system_id = actor, registry, system_id

    async def run(self, mailbox: trio.MemoryReceiveChannel[Any]) -> None:
        ring = self.registry.log_of(self.system_id)
        ring.add(f"opening its clients and pools ({self.actor.system.config.get('type')})")
        try:
            await self.actor.run(mailbox)
        except Exception as exc:
            ring.add(self.registry.redact(self.system_id, f"crashed: {type(exc).__name__}: {exc}"), "error")
            raise
        except BaseException:
            ring.add("stopped: its clients and pools are closed")
            raise
        ring.add("stopped: its clients and pools are closed")


def scoped_secrets(secrets: Mapping[str, Any], own: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The secrets a system's ``$SECRET(name)`` sees: its own, then the global ones (node-spec 3.4)."""
    return {**secrets, **own} if own else secrets


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _shown(entity: dict[str, Any], env: Mapping[str, Any]) -> dict[str, Any]:
    """The entity with ``$ENV`` substituted and ``$SECRET(...)`` left as text (as it is when that fails)."""
    try:
        shown: dict[str, Any] = substitute(entity, env, None)
    except SubstitutionError:
        return entity
    return shown


def _effective(system: System | None, shown: dict[str, Any]) -> dict[str, Any]:
    """The shown config with the system type's defaults filled in and a short ``type`` expanded."""
    if system is None:
        return shown
    defaults = {k: v for k, v in type(system).defaults.items() if k not in shown}
    return {**shown, "type": system.config["type"], **defaults}


def _secret_texts(entity: dict[str, Any], secrets: Mapping[str, Any]) -> dict[str, str]:
    """The text forms of the secret values an entity uses, mapped to their names."""
    texts: dict[str, str] = {}
    for name in secret_names(entity):
        if name not in secrets:
            continue
        value = secrets[name]
        for text in {value if isinstance(value, str) else orjson.dumps(value).decode(), str(value), repr(value)}:
            if text:
                texts[text] = name
    return texts
