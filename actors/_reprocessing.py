"""Automatic reprocessing (node-spec 4.8): whether a pipe has fallen out of sync with its inputs.

After each successful run the pump records the pipe's *sync record*: a digest of its config (the parts that
shape its output: everything but ``pump``, ``description`` and ``comment``) and the generation of every
dataset it reads (its source datasets and the datasets its DTL hops into; one that is missing keeps the
generation it had). Before the next run it compares:

* a dataset that was deleted, or deleted and created again (another generation);
* a dataset the pipe reads now and did not before (a new join, a new input);
* a source dataset that ends before the pipe's offset (truncated);
* with ``rescan_when_config_changes`` (the pipe's, else ``global_defaults``), a changed config.

With ``reprocessing_policy: automatic`` (the pipe's, else ``global_defaults``) the pump then resets the pipe
and runs it full; with ``continue`` (the default) it marks the pipe out of sync and runs as asked. A
successful full run brings the pipe back in sync. A dataset that is gone (and not back yet) marks the pipe
but does not reset it: a full run over a missing input would delete the pipe's whole output, so the reset
waits until the dataset is created again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from .components import ConfigError, setting

__all__ = ["POLICIES", "config_digest", "kept_record", "out_of_sync", "policy", "resets", "sync_record"]

POLICIES = ("continue", "automatic")
_NOT_OUTPUT = ("pump", "description", "comment")  # pipe properties that do not shape the output


def policy(config: Mapping[str, Any], metadata: Mapping[str, Any], pipe_id: str) -> tuple[str, bool]:
    """The pipe's ``reprocessing_policy`` and ``rescan_when_config_changes``; bad values are ConfigErrors."""
    chosen = setting(config, metadata, "reprocessing_policy", "continue")
    if chosen not in POLICIES:
        raise ConfigError(f"must be one of {', '.join(POLICIES)}, not {chosen!r}",
                          where=f"pipe {pipe_id}: reprocessing_policy")
    on_config = setting(config, metadata, "rescan_when_config_changes", False)
    if type(on_config) is not bool:
        raise ConfigError(f"must be true or false, not {on_config!r}",
                          where=f"pipe {pipe_id}: rescan_when_config_changes")
    return chosen, on_config


def config_digest(config: Mapping[str, Any]) -> str:
    """The digest of the parts of a pipe's config that shape its output."""
    shaping = {k: v for k, v in config.items() if k not in _NOT_OUTPUT}
    return hashlib.sha256(orjson.dumps(shaping, option=orjson.OPT_SORT_KEYS)).hexdigest()


def sync_record(config: Mapping[str, Any] | str, generations: Mapping[str, str | None]) -> dict[str, Any]:
    """What a successful run leaves to compare with: the config digest (given, or of ``config``) and each
    input's generation."""
    digest = config if isinstance(config, str) else config_digest(config)
    return {"config": digest, "inputs": dict(generations)}


def out_of_sync(recorded: Mapping[str, Any] | None, now: Mapping[str, Any], *, config_changes: bool,
                truncated: str | None = None) -> list[dict[str, Any]]:
    """The reasons the pipe is out of sync since ``recorded`` (none without a record), each with its
    dataset (None for the config); ``truncated`` names a source dataset that ends before the offset."""
    reasons: list[dict[str, Any]] = []
    if truncated is not None:
        reasons.append({"reason": f"the source dataset '{truncated}' ends before the pipe's offset",
                        "dataset": truncated, "kind": "truncated"})
    if not recorded:
        return reasons
    before: Mapping[str, Any] = recorded.get("inputs") or {}
    for name, generation in now["inputs"].items():
        if name not in before:
            reasons.append({"reason": f"the pipe reads a new dataset '{name}'", "dataset": name, "kind": "new-input"})
        elif before[name] is not None and generation is None:
            reasons.append({"reason": f"the dataset '{name}' was deleted", "dataset": name, "kind": "deleted"})
        elif before[name] is not None and generation != before[name]:
            reasons.append({"reason": f"the dataset '{name}' was deleted and created again", "dataset": name,
                            "kind": "recreated"})
    if config_changes and recorded.get("config") != now["config"]:
        reasons.append({"reason": "the pipe's config changed", "dataset": None, "kind": "config"})
    return reasons


def kept_record(recorded: Mapping[str, Any] | None, now: Mapping[str, Any]) -> dict[str, Any]:
    """The sync record to keep after a good run: ``now``, except that an input that is missing keeps the
    generation it had, so that its return as another dataset is seen."""
    before: Mapping[str, Any] = (recorded or {}).get("inputs") or {}
    inputs = {name: generation if generation is not None else before.get(name)
              for name, generation in now["inputs"].items()}
    return {**now, "inputs": inputs}


def resets(reasons: list[dict[str, Any]]) -> bool:
    """Whether the automatic policy resets the pipe for ``reasons``: not while an input is missing."""
    return bool(reasons) and all(reason["kind"] != "deleted" for reason in reasons)
