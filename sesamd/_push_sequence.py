"""The JSON Push receiver's sequence rules (node-spec 9.1), sans IO.

A receiver has at most one active full sequence, kept in the pipe state that every write commits with its
batch: ``{"sequence_id", "last_request_id", "previous_request_id", "ended", "generation"}`` (``generation``
is the sink's full run).
:func:`plan` takes that state and one request's parameters and says what to do, or raises
:class:`SequenceConflict` (a 409):

- an incremental request (``is_full`` false) just writes; one that names the active full sequence is a
  conflict (``is_full`` changed within the sequence);
- a full request with a new ``sequence_id`` starts a new sequence (a new full run), replacing the active one;
- within the active sequence, ``previous_request_id`` must be the last request's id, and ``is_first`` is a
  conflict; the same request again (its ``request_id`` is the last one's, with the same previous id) is a
  retry: written again (unchanged entities add no versions), and, with ``is_last``, ended again;
- ``is_last`` ends the sequence: ids not seen in it are deleted. The ended sequence stays in the state, so
  that a retry of its last request is known (and does not start a new sequence that would delete the rest).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["PushRequest", "SequenceConflict", "SequenceStep", "plan"]


class SequenceConflict(ValueError):
    """The request breaks the active sequence (HTTP 409)."""


@dataclass(frozen=True)
class PushRequest:
    """The sequence parameters of one push request."""

    sequence_id: str | None = None
    is_full: bool = False
    request_id: str | None = None
    previous_request_id: str | None = None
    is_first: bool = False
    is_last: bool = False

    @classmethod
    def of(cls, params: Mapping[str, str]) -> PushRequest:
        def flag(name: str) -> bool:
            value = params.get(name, "false").strip().lower()
            if value not in ("true", "false", "1", "0", ""):
                raise ValueError(f"query parameter '{name}' must be true or false, not {params[name]!r}")
            return value in ("true", "1")

        return cls(params.get("sequence_id") or None, flag("is_full"), params.get("request_id") or None,
                   params.get("previous_request_id") or None, flag("is_first"), flag("is_last"))


@dataclass(frozen=True)
class SequenceStep:
    """What one request does: ``begin`` a new full run (else write within the ``active`` sequence's run, if
    any), ``end`` it after the write; ``state`` is the receiver state to commit with the write."""

    begin: bool
    end: bool
    active: dict[str, Any] | None
    state: dict[str, Any] | None


def plan(active: Mapping[str, Any] | None, request: PushRequest) -> SequenceStep:
    """The step for ``request`` given the ``active`` sequence (None when there is none)."""
    same = active is not None and request.sequence_id is not None and request.sequence_id == active["sequence_id"]
    if not request.is_full:
        if same and not (active or {}).get("ended"):
            raise SequenceConflict(f"sequence '{request.sequence_id}' is a full sequence: is_full cannot change "
                                   "within it")
        return SequenceStep(False, False, None, dict(active) if active is not None else None)
    if request.sequence_id is None:
        raise SequenceConflict("a full sync request needs a sequence_id")
    mine = {"sequence_id": request.sequence_id, "last_request_id": request.request_id,
            "previous_request_id": request.previous_request_id, "ended": request.is_last}
    if not same:
        return SequenceStep(True, request.is_last, None, {**mine, "generation": None})
    assert active is not None
    last = active.get("last_request_id")
    retry = request.request_id is not None and request.request_id == last \
        and request.previous_request_id == active.get("previous_request_id")
    if retry:  # the same request again: write again; end again only if it had not ended
        ended = bool(active.get("ended"))
        return SequenceStep(False, request.is_last and not ended, dict(active), {**active, "ended": ended or
                                                                                  request.is_last})
    if active.get("ended"):
        raise SequenceConflict(f"sequence '{request.sequence_id}' has ended (with request '{last}')")
    if request.is_first:
        raise SequenceConflict(f"request '{request.request_id}' says is_first, but sequence "
                               f"'{request.sequence_id}' has begun (its last request is '{last}')")
    if request.previous_request_id != last:
        raise SequenceConflict(f"previous_request_id '{request.previous_request_id}' is not the last request "
                               f"of sequence '{request.sequence_id}' ('{last}')")
    return SequenceStep(False, request.is_last, dict(active), {**active, **mine})
