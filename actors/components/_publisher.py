"""The publisher extension point: a sink that no pump runs; clients GET what it publishes (node-spec 8.0).

A publisher sink type (``http_endpoint``, ``csv_endpoint``) is served at ``/api/publishers/<pipe>/<route>``
(and ``.../<route>/<filename>``). On each request the node reads the pipe's source from the request's
``since``, runs its transforms (the query parameters bound to DTL's ``_B``) and hands the entities to
:meth:`PublisherSink.render`, which yields the body's bytes as they are made; the response streams them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from .._datasets import DatasetWrite
from ._base import BuildContext, Sink, load_state, state_write
from ._errors import TerminalError

__all__ = ["PUBLISHER_PROPERTIES", "PublisherSink"]

PUBLISHER_PROPERTIES: dict[str, Any] = {
    "filename": {"type": "string", "minLength": 1},
    "content_disposition": {"enum": ["attachment", "inline"]},
    "batch_size": {"type": "integer", "minimum": 1},
}


class PublisherSink(Sink):
    """Renders entities for a GET; ``route`` is its URL part, ``media_type`` its body's type."""

    route: ClassVar[str] = ""
    media_type: ClassVar[str] = "application/octet-stream"
    skips_deleted = False  # whether deleted entities are left out of what it publishes

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        super().__init__(config, context)
        self.state_dataset = f"system:pump:{context.pipe_id}"
        self.state_key = f"pipe:{context.pipe_id}"

    def render(self, entities: Iterable[dict[str, Any]]) -> Iterator[bytes]:
        """The response body for ``entities`` (wire form, in order), in pieces."""
        raise NotImplementedError  # pragma: no cover - abstract

    def headers(self, filename: str | None = None) -> dict[str, str]:
        """The response headers besides ``Content-Type``: ``Content-Disposition`` when a file name is given
        (the URL's, else the config's ``filename``)."""
        name = filename or self.config.get("filename")
        if not name:
            return {}
        disposition = self.config.get("content_disposition", "attachment")
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return {"Content-Disposition": f'{disposition}; filename="{quoted}"'}

    def write(self, batch: list[dict[str, Any]], *, state: dict[str, Any], full_run: Any | None) -> DatasetWrite:
        raise TerminalError(f"pipe {self.context.pipe_id} publishes on GET /api/publishers/{self.context.pipe_id}/"
                            f"{self.route}: it has no pump to run")

    def load_state(self) -> dict[str, Any]:
        return load_state(self.context.datasets, self.state_dataset, self.state_key)

    def save_state(self, state: dict[str, Any]) -> DatasetWrite:
        return state_write(self.state_dataset, self.state_key, state)
