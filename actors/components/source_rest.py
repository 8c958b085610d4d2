"""The ``rest`` source: entities from a ``system:rest`` operation, page by page (node-spec 6.12).

It calls ``operation`` (an operation of the source's ``operations`` or the system's; the machinery, the
templates and the paging are described in :mod:`actors.components.system_rest`) and yields the entities of
each page as it comes, in batches across pages. A JSON answer's entities are ``payload_property`` of the
body (an exact key wins over a dotted path), or the body itself: each object of a list, or one object; an
item that is not an object is an error unless ``response_property`` is set, which puts each item under that
property instead. A non-JSON answer gives one entity holding the text under ``response_property``
(default ``response``), with its ``content-type`` when ``response_include_content_type``.
``response_headers_property`` and ``response_status_property`` add the response's headers and status to
every entity. ``id_expression`` and ``updated_expression`` set ``_id`` and ``_updated`` (they see the item's
keys, ``entity`` (the item), ``body``, ``headers`` (the response's), ``url``, ``request_params``,
``properties``, ``since`` and the paging variables); ``error_expression`` (with ``payload_property`` and a
JSON answer) fails the run with its text when it renders non-empty. Settings of the source win over the
operation's.

Continuation (all three flags settable, default ``supports_since: false``): with ``supports_since`` the
offset (else ``initial_since_value``) is sent as ``since_property_name`` (default ``since``) in the query or
a header (``since_property_location``; ``manual`` sends nothing), unless the operation's ``url`` template
uses ``since`` (or that name) itself. Failures: connect errors, timeouts and 5xx are retried by the pump's
``max_read_retries``/``read_retry_delay``, 429 by the rate limiting settings; what still fails (and any 4xx)
fails the run with a message naming the method and URL, and the offset stays where it was. ``trace`` is
accepted and not implemented.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import storage

from ._base import CONTINUATION_FLAGS, BuildContext, Source
from ._errors import TerminalError
from ._http import RetryPolicy, retry_strategy
from ._registry import component
from .system_rest import (
    COMPONENT_PROPERTIES,
    RESPONSE_PROPERTIES,
    Call,
    Page,
    RestLink,
    extract,
    items_of,
    payload_of,
    properties_of,
    render,
    value_of,
)

DEFAULT_RESPONSE_PROPERTY = "response"


@component("source", "rest", {
    "required": ["system", "operation"],
    "properties": {
        **COMPONENT_PROPERTIES,
        **RESPONSE_PROPERTIES,
        "since_property_name": {"type": "string", "minLength": 1},
        "since_property_location": {"enum": ["query", "header", "manual"]},
        "supports_signalling": {"type": "boolean"},
        "if_source_empty": {"enum": ["accept", "fail"]},
    },
})
class RestSource(Source):
    """Reads the entities a REST operation answers with, following its pages."""

    adds_namespaces = True

    settable_flags = frozenset(CONTINUATION_FLAGS)  # all three "default" (node-spec 6.0)

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        super().__init__(config, context)
        self.rest = RestLink(config, context, what="rest source")
        self.rest.check_operation(config["operation"])
        self.retries = RetryPolicy.of(context.pipe.get("pump") or {}, "max_read_retries", "read_retry_delay",
                                      strategy=retry_strategy(config, context))
        self.sleep: Callable[[float], None] = time.sleep  # between retries (tests replace it)

    def read(self, since: Any | None, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        batch: list[dict[str, Any]] = []
        for entity in self._entities(since if self.supports_since else None):
            batch.append(entity)
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _entities(self, since: Any | None) -> Iterator[dict[str, Any]]:
        rest = self.rest
        operation = rest.operation(self.config["operation"])
        properties = properties_of(rest, operation, None)
        payload, templated = payload_of(rest, operation, None)
        since_name = rest.setting("since_property_name", operation, "since")
        call = Call(rest, operation, {"properties": properties, "since": since, since_name: since},
                    payload=payload, templated_payload=templated, policy=self.retries, sleep=self.sleep,
                    since=since, since_name=since_name,
                    since_location=rest.setting("since_property_location", operation, "query"))
        for page in call.pages():
            yield from self._page(call, page)

    def _page(self, call: Call, page: Page) -> Iterator[dict[str, Any]]:
        rest, operation, reply = self.rest, call.operation, page.reply
        setting = rest.setting
        response_property = setting("response_property", operation)
        headers_property = setting("response_headers_property", operation)
        status_property = setting("response_status_property", operation)
        payload_property = setting("payload_property", operation)
        what = reply.url
        if reply.is_json:
            error = setting("error_expression", operation)
            if error is not None and payload_property is not None:
                text = render(error, page.context, f"{call.what}: error_expression").strip()
                if text:
                    raise TerminalError(f"{page.request.method} {what}: error_expression: {text}",
                                        status=reply.status)
            items = items_of(extract(reply.body, payload_property))
        else:
            items = [reply.body]
        for index, item in enumerate(items):
            if not reply.is_json:
                entity: dict[str, Any] = {response_property or DEFAULT_RESPONSE_PROPERTY: item}
                if setting("response_include_content_type", operation, False):
                    entity["content-type"] = reply.content_type
            elif response_property is not None:
                entity = {response_property: item}
            elif type(item) is dict:
                entity = dict(item)
            else:
                raise TerminalError(f"{page.request.method} {what}: item {index} of the answer is not a JSON object "
                                    "(set payload_property to where the entities are, or response_property)")
            if headers_property is not None:
                entity[headers_property] = dict(reply.header_values)
            if status_property is not None:
                entity[status_property] = reply.status
            self._expressions(call, page, item, entity)
            yield storage.encode(entity)

    def _expressions(self, call: Call, page: Page, item: Any, entity: dict[str, Any]) -> None:
        operation = call.operation
        id_expression = self.rest.setting("id_expression", operation)
        updated_expression = self.rest.setting("updated_expression", operation)
        if id_expression is None and updated_expression is None:
            return
        context = {**(item if type(item) is dict else {}), **page.context, "entity": item}
        if id_expression is not None:
            value = value_of(id_expression, context, f"{call.what}: id_expression")
            if value is not None and value != "":
                entity["_id"] = value if isinstance(value, str) else str(value)
        if updated_expression is not None:
            value = value_of(updated_expression, context, f"{call.what}: updated_expression")
            if value is not None and value != "":
                entity["_updated"] = value
