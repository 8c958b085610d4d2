"""Write errors, entity retries and dead letters of a pipe whose sink delivers to another system (node-spec 5.5).

A batch the sink could not deliver (after its own ``batch_retries``) is sent again one entity at a time
(``fallback_to_single_entities_on_batch_fail``, default true) to find the entities that fail. Each failure is
a ``write-error:<_id>`` entity in the pipe's execution log: ``error_code`` 0 when the target system could not
be reached at all (a refused connection, a timeout: the run fails at once, since sending entities one by one
to a system that is down would only condemn them), 1 when this entity failed. ``max_consecutive_write_errors``
(default 1: the first failure fails the run) failures in a row fail the run; its offset stays at the last
batch delivered, so the next run sends the rest again.

A failure the run tolerates is *retryable* when write retries are on (``max_write_errors_in_retry_dataset``
> 0, the cap on unresolved retryable errors; one more fails the run): every later incremental run first sends
the retryable entities again, alone and as they were sent (not transformed again). An entity whose retries
failed ``max_retries_per_entity`` (default 5) times is *dead*; with retries off, a tolerated failure is dead
at once. A dead entity goes to the dead-letter dataset (``dead_letter_dataset``, or
``system:dead-letter:<pipe>`` with ``use_dead_letter_dataset``) under its own ``_id``, with its error, and is
not retried again. A later version of the entity delivered successfully resolves its error (``resolved``,
with ``resolved_entity`` when it differs); with ``track_dead_letters`` it also deletes the dead letter.
``discard-retries`` (:func:`discard_write`) makes the pending retryable errors non-retryable (not dead).

:class:`WriteErrors` is the sans-IO bookkeeping of one run: the run tells it what was delivered and what
failed, and takes the writes it owes (:meth:`WriteErrors.take_writes`). The driver applies those *before* the
write that moves the offset past the batch, so a crash between the two sends the batch again (a failing
entity then updates its error, a delivered one resolves it): nothing is lost.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import storage

from ._datasets import DatasetWrite
from .components import ComponentError, ConfigError

__all__ = ["WRITE_ERROR_PREFIX", "WriteAbort", "WriteErrors", "WritePolicy", "discard_write", "is_unreachable",
           "pending_errors"]

WRITE_ERROR_PREFIX = "write-error:"
_INTEGERS = {"max_consecutive_write_errors": 1, "max_write_errors_in_retry_dataset": 0,
             "max_retries_per_entity": 5}
_BOOLEANS = {"fallback_to_single_entities_on_batch_fail": True, "use_dead_letter_dataset": False,
             "track_dead_letters": False}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class WritePolicy:
    """The pump settings of 5.5 (see the module docstring)."""

    max_consecutive_write_errors: int = 1
    max_write_errors_in_retry_dataset: int = 0
    max_retries_per_entity: int = 5
    fallback: bool = True
    dead_letter_dataset: str | None = None
    track_dead_letters: bool = False

    @property
    def retries(self) -> bool:
        """Whether failed entities are retried on later runs."""
        return self.max_write_errors_in_retry_dataset > 0

    @classmethod
    def of(cls, pipe_id: str, pump: dict[str, Any]) -> WritePolicy:
        """The policy of a pipe's ``pump`` config; a malformed setting is a :class:`ConfigError`."""
        values: dict[str, Any] = {}
        for key, default in _INTEGERS.items():
            value = pump.get(key, default)
            if type(value) is not int or value < (1 if key == "max_consecutive_write_errors" else 0):
                low = 1 if key == "max_consecutive_write_errors" else 0
                raise ConfigError(f"must be an integer >= {low}", where=f"pipe {pipe_id}: pump.{key}")
            values[key] = value
        flags: dict[str, bool] = {}
        for key, default in _BOOLEANS.items():
            flag = pump.get(key, default)
            if not isinstance(flag, bool):
                raise ConfigError("must be true or false", where=f"pipe {pipe_id}: pump.{key}")
            flags[key] = flag
        dead_letters = pump.get("dead_letter_dataset")
        if dead_letters is not None and (not isinstance(dead_letters, str) or not dead_letters
                                         or "/" in dead_letters):
            raise ConfigError("must be a dataset id (a non-empty string without '/')",
                              where=f"pipe {pipe_id}: pump.dead_letter_dataset")
        if dead_letters is None and flags["use_dead_letter_dataset"]:
            dead_letters = f"system:dead-letter:{pipe_id}"
        return cls(values["max_consecutive_write_errors"], values["max_write_errors_in_retry_dataset"],
                   values["max_retries_per_entity"], flags["fallback_to_single_entities_on_batch_fail"],
                   dead_letters, flags["track_dead_letters"])


def pending_errors(log: storage.Dataset | None) -> dict[str, dict[str, Any]]:
    """The unresolved ``write-error`` entities of an execution log, by the failed entity's ``_id``."""
    if log is None:
        return {}
    pending: dict[str, dict[str, Any]] = {}
    for entity in log.iter_entities(history=False):
        entity_id = entity.get("_id", "")
        if entity_id.startswith(WRITE_ERROR_PREFIX) and not entity.get("resolved"):
            error = {k: v for k, v in entity.items() if not k.startswith("_") or k == "_id"}
            pending[entity_id[len(WRITE_ERROR_PREFIX):]] = error
    return pending


def discard_write(log_dataset: str) -> DatasetWrite:
    """``discard-retries``: the pending retryable errors become non-retryable (not dead), and the log gets a
    ``pump-discard-retries`` event; the write returns how many it discarded."""

    def apply(dataset: storage.Dataset) -> int:
        now = _now()
        discarded = [{**error, "retryable": False, "discarded": True, "event_time": now}
                     for error in pending_errors(dataset).values() if error.get("retryable")
                     and not error.get("dead")]
        event = {"_id": "pump-discard-retries", "event_type": "pump-discard-retries", "event_time": now,
                 "discarded": len(discarded)}
        dataset.write([*discarded, event])
        return len(discarded)

    return DatasetWrite(log_dataset, apply)


class WriteAbort(Exception):
    """The run must fail: ``message`` says why, ``entity`` is the entity it failed on, ``error`` the sink's."""

    def __init__(self, message: str, entity: dict[str, Any] | None, error: BaseException) -> None:
        super().__init__(message)
        self.message = message
        self.entity = entity
        self.error = error


@dataclass
class WriteErrors:
    """The write errors of one run (sans-IO): those pending from earlier runs and what this run adds."""

    policy: WritePolicy
    log_dataset: str
    pending: dict[str, dict[str, Any]]
    consecutive: int = 0
    failed: int = 0  # entities that failed in this run
    resolved: int = 0
    dead: int = 0
    _log: list[dict[str, Any]] = field(default_factory=list)
    _dead_letters: list[dict[str, Any]] = field(default_factory=list)

    def to_retry(self) -> list[dict[str, Any]]:
        """The entities of the pending retryable errors (as they were sent), oldest error first."""
        if not self.policy.retries:
            return []
        errors = [e for e in self.pending.values() if e.get("retryable") and not e.get("dead")]
        return [e["entity"] for e in sorted(errors, key=lambda e: e.get("event_time") or "")
                if isinstance(e.get("entity"), dict)]

    @property
    def retryable_count(self) -> int:
        return sum(1 for e in self.pending.values() if e.get("retryable") and not e.get("dead"))

    def delivered(self, entities: Iterable[dict[str, Any]]) -> None:
        """Entities the sink took: failures in a row end, and their pending errors are resolved."""
        self.consecutive = 0
        if not self.pending:
            return
        for entity in entities:
            error = self.pending.pop(str(entity.get("_id")), None)
            if error is None:
                continue
            resolution = {**error, "resolved": True, "retryable": False, "event_time": _now()}
            if entity != error.get("entity"):
                resolution["resolved_entity"] = entity
            self._log.append(resolution)
            self.resolved += 1
            if error.get("dead") and self.policy.track_dead_letters and self.policy.dead_letter_dataset:
                self._dead_letters.append({"_id": error["entity"].get("_id"), "_deleted": True})

    def failed_entity(self, entity: dict[str, Any], error: BaseException, *, retry: bool) -> None:
        """Record that ``entity`` failed (``retry``: in the retry pass, where failures of known errors do not
        count as failures in a row); raises :class:`WriteAbort` when the run must fail because of it."""
        policy = self.policy
        entity_id = str(entity.get("_id"))
        unreachable = is_unreachable(error)
        earlier = self.pending.get(entity_id) or {}
        if unreachable and retry:  # the error stays as it was: the system, not the entity, failed
            raise WriteAbort(f"the sink could not reach its system: {error}", entity, error)
        attempts = earlier.get("retry_attempts", 0) + (1 if retry and earlier else 0)
        if not retry:
            self.consecutive += 1
        self.failed += 1
        tolerated = not unreachable and (retry or self.consecutive < policy.max_consecutive_write_errors)
        if tolerated:
            retryable = policy.retries and attempts < policy.max_retries_per_entity
        else:  # the run fails and the offset stays before the entity: it is sent again anyway
            retryable = bool(earlier.get("retryable"))
        dead = tolerated and not retryable
        formatted = "".join(traceback.format_exception(error))
        record = {"_id": WRITE_ERROR_PREFIX + entity_id, "event_type": "write-error",
                  "error_code": 0 if unreachable else 1, "event_time": _now(), "retry_attempts": attempts,
                  "retryable": retryable, "resolved": False, "dead": dead, "entity": entity,
                  "original_error_message": str(error), "traceback": formatted, "original_traceback": formatted}
        self._log.append(record)
        self.pending[entity_id] = record
        if dead:
            self.dead += 1
            if policy.dead_letter_dataset:
                self._dead_letters.append({**record, "_id": entity_id, "write_error_id": record["_id"]})
        if unreachable:
            raise WriteAbort(f"the sink could not reach its system: {error}", entity, error)
        if not tolerated:
            errors = self.consecutive
            raise WriteAbort(f"writing entity '{entity_id}' failed: {error}" + (
                f" ({errors} write errors in a row; max_consecutive_write_errors is "
                f"{policy.max_consecutive_write_errors})" if errors > 1 else ""), entity, error)
        if retryable and self.retryable_count > policy.max_write_errors_in_retry_dataset:
            raise WriteAbort(f"more than {policy.max_write_errors_in_retry_dataset} entities wait for a write "
                             f"retry (max_write_errors_in_retry_dataset); the last: '{entity_id}': {error}",
                             entity, error)

    def take_writes(self) -> list[DatasetWrite]:
        """The writes owed so far (execution log, then dead letters), to apply before the batch's own write."""
        writes: list[DatasetWrite] = []
        if self._log:
            entities, self._log = self._log, []
            writes.append(DatasetWrite(self.log_dataset, lambda dataset: dataset.write(entities).appended))
        if self._dead_letters and self.policy.dead_letter_dataset:
            letters, self._dead_letters = self._dead_letters, []
            writes.append(DatasetWrite(self.policy.dead_letter_dataset, lambda dataset: _write_letters(dataset,
                                                                                                       letters)))
        return writes


def _write_letters(dataset: storage.Dataset, letters: list[dict[str, Any]]) -> int:
    appended = dataset.write(letters).appended
    if not dataset.populated:
        dataset.set_populated()  # a dead-letter dataset is always populated
    return appended


def is_unreachable(error: BaseException) -> bool:
    """Whether a sink's error says its system could not be reached (a transient error without an answer)."""
    return isinstance(error, ComponentError) and error.transient and error.status is None
