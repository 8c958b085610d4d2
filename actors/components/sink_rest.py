"""The ``rest`` sink: one request per entity through a ``system:rest`` operation (node-spec 8.10).

An entity is ``{"_id", "properties": {...}, "operation": "<name>", "payload": ...}``: its ``operation``,
``properties`` and ``payload`` win over the sink's, which win over the operation's (``properties`` are not
merged; only config payloads are templates). The request (method, templated URL, headers, params, and the
body by the operation's ``payload-type``) is described in :mod:`actors.components.system_rest`; any 2xx
answer delivers the entity, anything else is an error for that entity.

Deletes: Sesam documents none. A ``_deleted`` entity is sent only when it names its own ``operation`` (a
DTL transform can pick e.g. a ``DELETE`` operation for deletes); otherwise it is skipped, since sending a
deleted entity through the sink's default (writing) operation would recreate what was deleted.

Errors: the pipe's write-error policy wraps the sink (``actors._write_errors``), so a failing entity raises
from :meth:`write`: a 4xx answer is a :class:`TerminalError` with its status, a write error for that entity;
connect errors, timeouts and 5xx are retried ``batch_retries`` (default 3) times ``write_retry_delay`` seconds
apart, doubling (an unreachable system then fails the run), and 429 follows ``rate_limiting_retries`` /
``rate_limiting_delay`` (the sink's, else the operation's, else the system's) when set. The pipe's
``batch_size`` defaults to 1 with this sink, as in Sesam: the sink's own ``batch_size`` wins, then a pipe
``batch_size`` other than the engine default of 100 (an explicit 100 cannot be told from the default). With
larger batches, an entity delivered before a later one of the same batch failed is not sent again when the
policy retries that batch entity by entity. ``trace`` is accepted and not implemented.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import storage

from .._datasets import DatasetWrite
from ._base import BuildContext, Sink, load_state, state_write
from ._errors import TerminalError
from ._http import RetryPolicy, retry_strategy
from ._registry import component
from .system_rest import COMPONENT_PROPERTIES, Call, RestLink, entity_context, payload_of, properties_of

DEFAULT_BATCH_RETRIES = 3
ENGINE_DEFAULT_BATCH_SIZE = 100  # actors._engine.DEFAULT_BATCH_SIZE (the engine imports this package)


@component("sink", "rest", {
    "required": ["system"],
    "properties": {
        **COMPONENT_PROPERTIES,
        "batch_size": {"type": "integer", "minimum": 1},
    },
})
class RestSink(Sink):
    """Sends each entity to a REST service through the operation it (or the sink) names."""

    removes_namespaces = True

    blocking = True

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        super().__init__(config, context)
        self.rest = RestLink(config, context, what="rest sink")
        self.rest.check_operation(config.get("operation"))
        if config.get("batch_size") is None:  # the runner takes the sink's batch_size first
            pipe_size = context.pipe.get("batch_size")
            explicit = type(pipe_size) is int and pipe_size != ENGINE_DEFAULT_BATCH_SIZE
            self.config = {**config, "batch_size": pipe_size if explicit else 1}
        self.state_dataset = f"system:pump:{context.pipe_id}"
        self.state_key = f"pipe:{context.pipe_id}"
        self.retries = RetryPolicy.of(context.pipe.get("pump") or {}, "batch_retries", "write_retry_delay",
                                      default_retries=DEFAULT_BATCH_RETRIES,
                                      strategy=retry_strategy(config, context))
        self.sleep: Callable[[float], None] = time.sleep  # between retries (tests replace it)
        self._delivered: list[dict[str, Any]] = []  # of the last batch of several, if it failed part way

    def write(self, batch: list[dict[str, Any]], *, state: dict[str, Any], full_run: Any | None) -> DatasetWrite:
        if len(batch) == 1:
            entity = batch[0]
            if any(entity is done for done in self._delivered):  # the policy's retry of a failed batch
                self._delivered = [done for done in self._delivered if done is not entity]
                return state_write(self.state_dataset, self.state_key, state, changes=0)
            return state_write(self.state_dataset, self.state_key, state, changes=self._deliver(entity))
        self._delivered = []
        sent = 0
        for entity in batch:
            sent += self._deliver(entity)
            self._delivered.append(entity)
        self._delivered = []
        return state_write(self.state_dataset, self.state_key, state, changes=sent)

    def _deliver(self, entity: dict[str, Any]) -> int:
        """Send one entity; 1 when a request was made, 0 when it was skipped (a delete without operation)."""
        rest = self.rest
        if entity.get("_deleted") is True and not isinstance(entity.get("operation"), str):
            return 0
        name = entity.get("operation", self.config.get("operation"))
        if not isinstance(name, str) or not name:
            raise TerminalError(f"entity '{entity.get('_id')}' names no 'operation' and the sink sets none")
        operation = rest.operation(name)
        typed = storage.decode(entity)
        payload, templated = payload_of(rest, operation, typed)
        context = {**entity_context(typed), "source_entity": typed,
                   "properties": properties_of(rest, operation, typed)}
        call = Call(rest, operation, context, payload=payload, templated_payload=templated, policy=self.retries,
                    sleep=self.sleep)
        request = call.prepare({**context, "page": 0, "is_first_page": True, "page_size": operation.page_size})
        reply = call.send(request)
        if not 200 <= reply.status < 300:
            raise TerminalError(f"{request.method} {reply.url} answered {reply.status}, not 2xx", status=reply.status)
        return 1

    def load_state(self) -> dict[str, Any]:
        return load_state(self.context.datasets, self.state_dataset, self.state_key)

    def save_state(self, state: dict[str, Any]) -> DatasetWrite:
        return state_write(self.state_dataset, self.state_key, state)
