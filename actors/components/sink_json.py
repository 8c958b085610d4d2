"""The ``json`` sink: JSON Push to a URL system (node-spec 8.2, 9.1).

Each run is one sequence: a new ``sequence_id`` (a UUID) and ``request_id`` 1, 2, 3... with
``previous_request_id`` on every request but the first. A full run sends ``is_full=true``, ``is_first`` on
its first request, and ends with ``is_last`` on a final request whose body is ``[]``, so the receiver's
deletion tracking sees the whole sequence (a full run with no entities still sends that one request).
Deleted entities go as entities with ``_deleted: true``. A batch is POSTed as one JSON array; a transient
failure is retried ``batch_retries`` times (default 3) ``write_retry_delay`` seconds apart, doubling; a
409 (a broken sequence) or another error fails the run, and, since each batch's offset commits only after
its POST succeeded, the next run resends what was not delivered.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import storage

from .._datasets import DatasetWrite
from ._base import BuildContext, Sink, load_state, state_write
from ._http import RetryPolicy, SystemLink, retry_strategy, send
from ._registry import component

DEFAULT_BATCH_RETRIES = 3


@dataclass
class _Sequence:
    """The sequence of one run: its id and the last request id sent."""

    id: str
    full: bool
    last: int = 0


@component("sink", "json", {
    "required": ["system", "url"],
    "properties": {
        "system": {"type": "string", "minLength": 1},
        "url": {"type": "string"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "batch_size": {"type": "integer", "minimum": 1},
    },
})
class JsonSink(Sink):
    """POSTs batches to a JSON Push receiver."""

    removes_namespaces = True

    blocking = True

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        super().__init__(config, context)
        self.link = SystemLink(config, context, what="json sink")
        self.state_dataset = f"system:pump:{context.pipe_id}"
        self.state_key = f"pipe:{context.pipe_id}"
        self.retries = RetryPolicy.of(context.pipe.get("pump") or {}, "batch_retries", "write_retry_delay",
                                      default_retries=DEFAULT_BATCH_RETRIES,
                                      strategy=retry_strategy(config, context))
        self._incremental: _Sequence | None = None

    def begin_full_run(self) -> DatasetWrite:
        sequence = _Sequence(str(uuid.uuid4()), full=True)
        return DatasetWrite(self.state_dataset, lambda _dataset: sequence)

    def begin_run(self) -> DatasetWrite | None:
        self._incremental = _Sequence(str(uuid.uuid4()), full=False)
        return None

    def write(self, batch: list[dict[str, Any]], *, state: dict[str, Any], full_run: Any | None) -> DatasetWrite:
        sequence = full_run if isinstance(full_run, _Sequence) else self._sequence()
        if batch:
            self._post(sequence, batch)
        return state_write(self.state_dataset, self.state_key, state, changes=len(batch))

    def end_full_run(self, run: Any, *, state: dict[str, Any], if_empty: str) -> DatasetWrite:
        if not isinstance(run, _Sequence):
            return self.save_state(state)
        key = self.state_key

        def finish(dataset: storage.Dataset) -> int:  # applied in a worker thread, like every write
            self._post(run, [], last=True)
            dataset.write([], offset_key=key, offset=state)
            return 0

        return DatasetWrite(self.state_dataset, finish)

    def _sequence(self) -> _Sequence:
        if self._incremental is None:
            self._incremental = _Sequence(str(uuid.uuid4()), full=False)
        return self._incremental

    def _post(self, sequence: _Sequence, batch: list[dict[str, Any]], *, last: bool = False) -> None:
        request_id = sequence.last + 1
        params = {"sequence_id": sequence.id, "is_full": "true" if sequence.full else "false",
                  "request_id": str(request_id)}
        if sequence.last:
            params["previous_request_id"] = str(sequence.last)
        elif sequence.full:
            params["is_first"] = "true"
        if last:
            params["is_last"] = "true"
        headers = {"Content-Type": "application/json", **self.link.headers}
        body = b"[" + b",".join(storage.dumps(e) for e in batch) + b"]"
        response = send(self.link.client, "POST", self.link.url(self.config["url"]), policy=self.retries,
                        params=params, headers=headers, content=body)
        response.close()
        sequence.last = request_id

    def load_state(self) -> dict[str, Any]:
        return load_state(self.context.datasets, self.state_dataset, self.state_key)

    def save_state(self, state: dict[str, Any]) -> DatasetWrite:
        return state_write(self.state_dataset, self.state_key, state)
