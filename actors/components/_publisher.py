"""The base of publisher sinks (node-spec 8.0, 8.3, 8.6): no pump runs them; a client's GET of
``/api/publishers/<pipe>/<kind>`` reads the pipe's source through its transforms
(:meth:`actors.PipeRunner.publish`) and the sink renders the entities as the response body."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from .._datasets import DatasetWrite
from ._base import BuildContext, Sink, load_state, state_write
from ._errors import TerminalError

__all__ = ["PUBLISHER_PROPERTIES", "Publisher"]

PUBLISHER_PROPERTIES: dict[str, Any] = {
    "filename": {"type": "string", "minLength": 1, "description": "sets Content-Disposition (inline if unset)"},
    "content_disposition": {"enum": ["attachment", "inline"], "default": "attachment"},
    "batch_size": {"type": "integer", "minimum": 1},
}


class Publisher(Sink):
    """A sink that serves its pipe's output on request. Subclasses set ``publishes`` and ``media_type`` and
    implement :meth:`render`; the pipe state (offsets the pump API may set) lives in ``system:pump:<pipe>``."""

    removes_namespaces = True

    publishes = "entities"
    media_type = "application/json"

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        super().__init__(config, context)
        self.state_dataset = f"system:pump:{context.pipe_id}"
        self.state_key = f"pipe:{context.pipe_id}"

    def render(self, batches: Iterable[list[dict[str, Any]]]) -> Iterator[bytes]:
        """The response body, in chunks, for the wire-form entity ``batches``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def headers(self, filename: str | None = None) -> dict[str, str]:
        """``Content-Disposition`` when a filename is asked for (the URL's, else the config's)."""
        name = filename or self.config.get("filename")
        if not name:
            return {}
        disposition = self.config.get("content_disposition", "attachment")
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return {"Content-Disposition": f'{disposition}; filename="{quoted}"'}

    def write(self, batch: list[dict[str, Any]], *, state: dict[str, Any], full_run: Any | None) -> DatasetWrite:
        raise TerminalError(f"pipe '{self.context.pipe_id}' publishes its entities on request; it is not pumped")

    def load_state(self) -> dict[str, Any]:
        return load_state(self.context.datasets, self.state_dataset, self.state_key)

    def save_state(self, state: dict[str, Any]) -> DatasetWrite:
        return state_write(self.state_dataset, self.state_key, state)
