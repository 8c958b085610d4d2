"""Systems in the node: validated system config entities and one supervised SystemActor per valid system.

The node calls :meth:`SystemRegistry.plan` while it validates an upload (after ``$ENV``/``$SECRET``
substitution) and :meth:`SystemRegistry.switch` when it applies it: systems whose entity hash changed restart
(their clients and pools are closed and made anew), new ones start, removed ones stop and close, and
unchanged ones keep running undisturbed. Secret values never leave this module: errors and runtime status are
scrubbed of them, and configs are shown with the ``$SECRET(name)`` text.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import trio

from actors import Supervisor, SystemActor
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

__all__ = ["SystemRegistry", "SystemState", "UnknownSystem"]

log = logging.getLogger("sesamd.systems")


class UnknownSystem(KeyError):
    """No system with this id."""


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
             env: Mapping[str, Any], secrets: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Validate the system entities of an upload and remember them for :meth:`switch`; returns new errors.

        ``resolved`` maps ids to substituted configs (a system missing there failed substitution: its errors
        are among ``errors``, matched by JSONPath).
        """
        new_errors: list[dict[str, Any]] = []
        planned: dict[str, SystemState] = {}
        for position, entity in enumerate(entities):
            if entity_kind(entity) != "system":
                continue
            system_id, where = entity["_id"], f"$[{position}]"
            state = SystemState(system_id, entity, _shown(entity, env), secrets=_secret_texts(entity, secrets))
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
        self.systems = planned
        for system_id in change.added + change.changed:
            self._start(planned[system_id])
        if change.added or change.removed or change.changed:
            log.info("systems applied: %d added, %d removed, %d changed, %d unchanged", len(change.added),
                     len(change.removed), len(change.changed), len(change.unchanged))
        return change

    def _start(self, state: SystemState) -> None:
        if not state.is_valid or self._supervisor is None or state.system is None:
            return
        actor = state.actor = self._make_actor(state.system)
        self._supervisor.start(state.actor_name, lambda: actor)  # a restart reuses it: it opens again

    async def _stop(self, state: SystemState) -> None:
        if self._supervisor is not None and state.actor is not None:
            await self._supervisor.stop(state.actor_name)
        state.actor = None

    async def stop_all(self) -> None:
        """Stop every system actor (closing clients and pools)."""
        async with trio.open_nursery() as nursery:
            for state in self.systems.values():
                nursery.start_soon(self._stop, state)

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

    def list_json(self) -> list[dict[str, Any]]:
        return [self.system_json(self.systems[k]) for k in sorted(self.systems)]


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
