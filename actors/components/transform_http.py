"""The ``http`` transform: a batch through a microservice (node-spec 7.3).

Each chunk of ``batch_size`` (100) entities is POSTed as a JSON array of wire-form entities (deleted ones
too, as entities with ``_deleted: true``, as the json sink sends them) to ``url``, relative to the ``system``
(a ``system:url`` or ``system:microservice``) or absolute, with ``Content-Type: application/json``, the
system's headers and auth and the transform's ``headers``. The answer must be a JSON array of entities, each
an object with a string ``_id``; it replaces the chunk, in the service's order (filtering, reshaping and
fan-out are all allowed). The answer is parsed as it streams in.

A transient failure (connect errors, timeouts, 429 and 5xx) is retried by the pump's ``batch_retries``
(default 3) ``write_retry_delay`` seconds apart, doubling, waiting out a longer ``Retry-After``, as the json
sink does; what still fails is a :class:`TransientError`, a 4xx a :class:`TerminalError`, and an answer that
is not a JSON array of entities a :class:`TerminalError` saying what is wrong; any of them fails the run.

With ``trigger_on`` (``key``, default ``_trigger``, a DTL path; ``value``, a ``*`` wildcard pattern) only the
entities whose key holds a matching string are sent; the others pass through untouched, and each request's
answer takes the place of the first entity it was sent for. ``side_effects`` (default true) is kept as
``side_effects``; ``bound`` (``_B``) is not used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx

import storage
from dtl._namespaces import wildcard_matcher
from dtl._paths import split_elements, walk

from ._base import BuildContext, Transform
from ._errors import TerminalError
from ._http import RetryPolicy, SystemLink, json_entities, retry_strategy, send
from ._registry import component

DEFAULT_BATCH_SIZE = 100
DEFAULT_BATCH_RETRIES = 3
_BLANK = b" \t\r\n"
_BOM = "\ufeff".encode()


@component("transform", "http", {
    "required": ["system", "url"],
    "properties": {
        "system": {"type": "string", "minLength": 1},
        "url": {"type": "string"},
        "batch_size": {"type": "integer", "minimum": 1},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "side_effects": {"type": "boolean"},
        "trigger_on": {"type": "object", "required": ["value"], "properties": {
            "key": {"type": "string", "minLength": 1}, "value": {"type": "string"}}},
    },
})
class HttpTransform(Transform):
    """POSTs batches to a microservice and emits the entities it answers with."""

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        super().__init__(config, context)
        self.link = SystemLink(config, context, what="http transform")
        self.batch_size: int = config.get("batch_size", DEFAULT_BATCH_SIZE)
        self.side_effects: bool = config.get("side_effects", True)
        self.retries = RetryPolicy.of(context.pipe.get("pump") or {}, "batch_retries", "write_retry_delay",
                                      default_retries=DEFAULT_BATCH_RETRIES,
                                      strategy=retry_strategy(config, context))
        self.trigger = _trigger(config.get("trigger_on"))
        self.sleep: Callable[[float], None] = time.sleep  # between retries (tests replace it)

    def transform(self, batch: list[dict[str, Any]], *,
                  bound: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        slots: list[dict[str, Any] | int] = []  # entities passing through, and the places of the answers
        chunks: list[list[dict[str, Any]]] = []
        for entity in batch:
            if self.trigger is not None and not self.trigger(entity):
                slots.append(entity)
                continue
            if not chunks or len(chunks[-1]) >= self.batch_size:
                slots.append(len(chunks))
                chunks.append([])
            chunks[-1].append(entity)
        answers = [self._post(chunk) for chunk in chunks]
        if self.trigger is None:
            return [entity for answer in answers for entity in answer]
        out: list[dict[str, Any]] = []
        for slot in slots:
            if isinstance(slot, int):
                out.extend(answers[slot])
            else:
                out.append(slot)
        return out

    def _post(self, chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
        url = self.link.url(self.config["url"])
        body = b"[" + b",".join(storage.dumps(e) for e in chunk) + b"]"
        response = send(self.link.client, "POST", url, policy=self.retries, stream=True, sleep=self.sleep,
                        headers={"Content-Type": "application/json", **self.link.headers}, content=body)
        out: list[dict[str, Any]] = []
        for index, entity in enumerate(json_entities(_ArrayBody(response, url))):  # type: ignore[arg-type]
            if type(entity) is not dict:
                raise TerminalError(f"POST {url}: item {index} of the answer is not a JSON object")
            if type(entity.get("_id")) is not str:
                raise TerminalError(f"POST {url}: item {index} of the answer has no string '_id'")
            out.append(entity)
        return out


class _ArrayBody:
    """An open response as :func:`json_entities` reads it, failing unless the body starts a JSON array
    (``json_entities`` also takes NDJSON and an empty body)."""

    def __init__(self, response: httpx.Response, url: str) -> None:
        self._response = response
        self._url = url
        self.request = response.request
        self.url = response.url

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        started = False
        for chunk in self._response.iter_bytes(chunk_size):
            if not started:
                head = chunk.removeprefix(_BOM).lstrip(_BLANK)
                if not head:
                    yield chunk  # blank so far: keep it, so error positions stay right
                    continue
                started = True
                if head[:1] != b"[":
                    first = head[:1].decode("utf-8", "replace")
                    raise TerminalError(f"POST {self._url}: the answer is not a JSON array (it starts with "
                                        f"{first!r})")
            yield chunk
        if not started:
            raise TerminalError(f"POST {self._url}: the answer is empty, not a JSON array")

    def close(self) -> None:
        self._response.close()


def _trigger(spec: Mapping[str, Any] | None) -> Callable[[dict[str, Any]], bool] | None:
    """The ``trigger_on`` predicate (as the dtl transform's): the key's value is a string matching the pattern."""
    if spec is None:
        return None
    steps = split_elements(spec.get("key", "_trigger"))
    matches = wildcard_matcher(spec["value"])

    def triggered(entity: dict[str, Any]) -> bool:
        value = walk(entity, steps)
        if type(value) is not str:
            return False
        value = storage.decode(value)  # wire form: "~~x" is the string "~x", "~:x" a URI (not a string)
        return type(value) is str and matches(value)

    return triggered
