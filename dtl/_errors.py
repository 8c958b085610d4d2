"""The two error types of the DTL engine."""

from __future__ import annotations

__all__ = ["DTLCompileError", "DTLError", "DTLRuntimeError", "DTLTripError"]


class DTLError(Exception):
    """Base class of every DTL error."""


class DTLCompileError(DTLError):
    """The configuration is not valid DTL; ``where`` locates the offending part (``rules.default[3][2]``)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.message = message


class DTLRuntimeError(DTLError):
    """Evaluation failed for one source entity (``fail!``, a missing ``_id`` with ``id_required``, ...)."""

    def __init__(self, message: str, entity_id: object = None) -> None:
        text = message if entity_id is None else f"entity {entity_id!r}: {message}"
        super().__init__(text)
        self.message = message
        self.entity_id = entity_id


class DTLTripError(DTLRuntimeError):
    """Raised by ``trip!``: fail the pump and trip the sink dataset's circuit breaker."""
