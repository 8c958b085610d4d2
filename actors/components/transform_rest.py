"""The ``rest`` transform: a REST call per entity, its answer added to the entity (node-spec 7.4).

Each entity (shape and precedence as for the rest sink: the entity's ``operation``, ``properties`` and
``payload`` win over the transform's, which win over the operation's) makes one request through a
``system:rest`` operation, GET included, following pages when the operation has ``next_page_link`` (see
:mod:`actors.components.system_rest`). The answer's status decides first: ``allowed_status_codes`` (the
transform's, else the operation's, default ``200-299``) are used, ``ignored_status_codes`` drop the entity
from the output, any other status fails the run (a :class:`TerminalError` naming the method, URL and status).

With ``replace_entity: false`` (the default) the entity is kept and ``response_property`` (default
``response``) gets the answer: the JSON (``payload_property`` of it when set; with paging, the items of all
pages as one list) or the text; ``response_headers_property`` and ``response_status_property`` get the
(last) answer's headers and status, ``response_include_content_type`` adds ``content-type``, and
``id_expression``/``updated_expression`` (with ``body``, ``headers``, ``entity``/``source_entity`` (the
input), ``properties``...) set ``_id``/``_updated``; ``error_expression`` (with ``payload_property`` and a
JSON answer) fails the run when it renders non-empty. With ``replace_entity: true`` the answer's JSON
objects replace the entity (any number of them), and a non-JSON answer gives ``{"_id": <the entity's>,
<response_property>: <text>}``.

Entities that ``trigger_on`` does not match, and deleted entities, pass through untouched (no request is
made for a delete). ``if_transform_empty: "fail"`` fails the run when a non-empty batch gives no entities.
Retries are as for the ``http`` transform: transient failures by the pump's ``batch_retries`` (default 3) and
``write_retry_delay``; 429 by the rate limiting settings when set. ``side_effects`` defaults to true;
``trace`` is accepted and not implemented.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import storage

from ._base import BuildContext, Transform
from ._errors import TerminalError
from ._http import RetryPolicy, retry_strategy
from ._registry import ConfigError, component
from .system_rest import (
    COMPONENT_PROPERTIES,
    DEFAULT_ALLOWED,
    RESPONSE_PROPERTIES,
    STATUSES,
    Call,
    Operation,
    Page,
    RestLink,
    entity_context,
    extract,
    items_of,
    payload_of,
    properties_of,
    render,
    statuses,
    value_of,
)
from .transform_http import _trigger

DEFAULT_BATCH_RETRIES = 3
DEFAULT_RESPONSE_PROPERTY = "response"


@component("transform", "rest", {
    "required": ["system"],
    "properties": {
        **COMPONENT_PROPERTIES,
        **RESPONSE_PROPERTIES,
        "replace_entity": {"type": "boolean"},
        "allowed_status_codes": STATUSES,
        "ignored_status_codes": STATUSES,
        "if_transform_empty": {"enum": ["accept", "fail"]},
        "side_effects": {"type": "boolean"},
        "trigger_on": {"type": "object", "required": ["value"], "properties": {
            "key": {"type": "string", "minLength": 1}, "value": {"type": "string"}}},
    },
})
class RestTransform(Transform):
    """Adds the answer of a REST call to each entity (or replaces the entity with it)."""

    def __init__(self, config: dict[str, Any], context: BuildContext) -> None:
        super().__init__(config, context)
        self.rest = RestLink(config, context, what="rest transform")
        self.side_effects: bool = config.get("side_effects", True)
        self.replace: bool = config.get("replace_entity", False)
        self.response_property: str = config.get("response_property", DEFAULT_RESPONSE_PROPERTY)
        self.trigger = _trigger(config.get("trigger_on"))
        self.retries = RetryPolicy.of(context.pipe.get("pump") or {}, "batch_retries", "write_retry_delay",
                                      default_retries=DEFAULT_BATCH_RETRIES,
                                      strategy=retry_strategy(config, context))
        self.sleep: Callable[[float], None] = time.sleep  # between retries (tests replace it)
        default = self.rest.check_operation(config.get("operation"))
        if default is not None:
            try:
                self._statuses(default)
            except TerminalError as exc:
                raise ConfigError(exc.message, where=f"{self.rest.where}.ignored_status_codes") from None

    def _statuses(self, operation: Operation) -> tuple[frozenset[int], frozenset[int]]:
        """The allowed and the ignored statuses for ``operation`` (the transform's settings win)."""
        allowed = statuses(self.rest.setting("allowed_status_codes", operation, DEFAULT_ALLOWED))
        ignored = statuses(self.rest.setting("ignored_status_codes", operation))
        if allowed & ignored:
            raise TerminalError(f"ignored_status_codes overlaps allowed_status_codes (operation '{operation.name}')")
        return allowed, ignored

    def transform(self, batch: list[dict[str, Any]], *,
                  bound: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for entity in batch:
            if entity.get("_deleted") is True or (self.trigger is not None and not self.trigger(entity)):
                out.append(entity)
            else:
                out.extend(self._call(entity))
        if batch and not out and self.config.get("if_transform_empty") == "fail":
            raise TerminalError(f"the rest transform gave no entities for a batch of {len(batch)} "
                                "(if_transform_empty: fail)")
        return out

    def _call(self, entity: dict[str, Any]) -> list[dict[str, Any]]:
        rest = self.rest
        name = entity.get("operation", self.config.get("operation"))
        if not isinstance(name, str) or not name:
            raise TerminalError(f"entity '{entity.get('_id')}' names no 'operation' and the rest transform sets none")
        operation = rest.operation(name)
        allowed, ignored = self._statuses(operation)
        typed = storage.decode(entity)
        payload, templated = payload_of(rest, operation, typed)
        context = {**entity_context(typed), "source_entity": typed,
                   "properties": properties_of(rest, operation, typed)}
        call = Call(rest, operation, context, payload=payload, templated_payload=templated, policy=self.retries,
                    sleep=self.sleep, accept=lambda status: status in allowed or status in ignored)
        pages: list[Page] = []
        for page in call.pages():
            status = page.reply.status
            if status in ignored:
                return []
            if status not in allowed:
                raise TerminalError(f"{page.request.method} {page.reply.url} answered {status}, which is not in "
                                    f"allowed_status_codes", status=status)
            pages.append(page)
        return self._replaced(entity, call, pages) if self.replace else [self._added(entity, typed, call, pages)]

    def _result(self, call: Call, pages: list[Page]) -> Any:
        """The answer for ``response_property``: one page's JSON (or text), or all pages' items as a list."""
        path = self.rest.setting("payload_property", call.operation)
        for page in pages:
            reply = page.reply
            error = self.rest.setting("error_expression", call.operation)
            if reply.is_json and path is not None and error is not None:
                text = render(error, page.context, f"{call.what}: error_expression").strip()
                if text:
                    raise TerminalError(f"{page.request.method} {reply.url}: error_expression: {text}",
                                        status=reply.status)
        if call.operation.get("next_page_link") is None:
            reply = pages[-1].reply
            return extract(reply.body, path) if reply.is_json else reply.body
        return [item for page in pages for item in (
            items_of(extract(page.reply.body, path)) if page.reply.is_json else [page.reply.body])]

    def _added(self, entity: dict[str, Any], typed: dict[str, Any], call: Call, pages: list[Page]) -> dict[str, Any]:
        rest, operation, last = self.rest, call.operation, pages[-1]
        out = dict(entity)
        out[self.response_property] = storage.encode(self._result(call, pages))
        headers_property = rest.setting("response_headers_property", operation)
        status_property = rest.setting("response_status_property", operation)
        if headers_property is not None:
            out[headers_property] = storage.encode(dict(last.reply.header_values))
        if status_property is not None:
            out[status_property] = last.reply.status
        if rest.setting("response_include_content_type", operation, False):
            out["content-type"] = storage.encode(last.reply.content_type)
        context = {**last.context, "entity": typed, "source_entity": typed}
        for key, target in (("id_expression", "_id"), ("updated_expression", "_updated")):
            expression = rest.setting(key, operation)
            if expression is None:
                continue
            value = value_of(expression, context, f"{call.what}: {key}")
            if value is not None and value != "":
                out[target] = storage.encode(str(value) if target == "_id" else value)
        return out

    def _replaced(self, entity: dict[str, Any], call: Call, pages: list[Page]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        include_type = self.config.get("response_include_content_type", False)
        path = self.rest.setting("payload_property", call.operation)
        for page in pages:
            reply = page.reply
            if not reply.is_json:
                replaced: dict[str, Any] = {"_id": entity.get("_id"),
                                            self.response_property: storage.encode(reply.body)}
                if include_type:
                    replaced["content-type"] = storage.encode(reply.content_type)
                out.append(replaced)
                continue
            for index, item in enumerate(items_of(extract(reply.body, path))):
                if type(item) is not dict:
                    raise TerminalError(f"{page.request.method} {reply.url}: item {index} of the answer is not a "
                                        "JSON object (replace_entity needs objects)")
                out.append(storage.encode(item))
        return out
