"""Receiving pushed entities (``POST /api/receivers/<pipe>/entities``, node-spec 9.1) for ``http_endpoint`` pipes.

The body is validated whole before anything is written (as ``POST /api/datasets/{id}/entities``); the
entities go through the pipe's transforms, then its sink, in one write that also commits the receiver's
sequence state (:mod:`sesamd._push_sequence`) in the pipe state. A full sequence is one full run of the
sink: its first request begins it, every request's entities are marked seen, and ``is_last`` ends it
(deletion tracking). Requests to one receiver take turns.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import trio

import storage

from ._entities_upload import validated_list
from ._push_sequence import PushRequest, SequenceConflict, plan

__all__ = ["NotAReceiver", "Receivers", "SequenceConflict"]


class NotAReceiver(LookupError):
    """The pipe's source does not receive pushed entities."""


class Receivers:
    """The node's receivers: :meth:`receive` one request's body into a pipe."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self._locks: defaultdict[str, trio.Lock] = defaultdict(trio.Lock)

    async def receive(self, pipe_id: str, body: bytes, params: Mapping[str, str]) -> dict[str, Any]:
        """Write the pushed entities; raises UnknownPipe, NotAReceiver, PipeUnavailable, ValueError (bad
        parameters), EntityUploadError (a bad entity: nothing written) or SequenceConflict."""
        state = self.node.pipe(pipe_id)
        runner = state.runner
        if runner is None or not state.is_valid:
            from ._node import PipeUnavailable

            raise PipeUnavailable(pipe_id, state)
        if not runner.source.receives:
            raise NotAReceiver(f"pipe '{pipe_id}' does not receive entities: its source is of type "
                               f"'{runner.source_config.get('type')}', not 'http_endpoint'")
        request = PushRequest.of(params)
        entities = await trio.to_thread.run_sync(validated_list, body)
        sink, writers = runner.sink, self.node.writers
        async with self._locks[pipe_id]:
            current = await trio.to_thread.run_sync(sink.load_state)
            step = plan(current.get("receiver"), request)
            batch = await trio.to_thread.run_sync(runner.transform_batch, entities)
            full_run: Any = None
            receiver = step.state
            if step.begin:
                begin = sink.begin_full_run()
                full_run = await writers.apply(begin) if begin is not None else None
                if receiver is not None and isinstance(full_run, storage.FullRun):
                    receiver = {**receiver, "generation": full_run.generation}
            elif step.active is not None and step.active.get("generation") is not None:
                full_run = storage.FullRun(step.active["generation"], seen=1, stale_possible=True)
            pipe_state = {**current, "receiver": receiver}
            written = await writers.apply(sink.write(batch, state=pipe_state, full_run=full_run))
            deleted = 0
            if step.end and full_run is not None:
                deleted = await writers.apply(sink.end_full_run(full_run, state=pipe_state, if_empty="accept"))
                finish = sink.finish(populated=True)
                if finish is not None:
                    await writers.apply(finish)
        return {"written": written, "deleted": deleted}
