"""The typed values of the entity model that Python has no type for.

Decimal (``decimal.Decimal``), UUID (``uuid.UUID``), bytes, date (``datetime.date``) and the JSON types
are plain Python values. This module adds namespaced identifiers, URIs and datetimes with nanosecond
precision.
"""

from __future__ import annotations

import datetime as _dt
from functools import total_ordering
from typing import Any

__all__ = ["NI", "URI", "Datetime", "EPOCH"]

UTC = _dt.UTC


@total_ordering
class _Tagged:
    """A string value with a type of its own (compared and hashed with its type)."""

    __slots__ = ("value",)
    value: str

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"{type(self).__name__} needs a string, not {type(value).__name__}")
        object.__setattr__(self, "value", value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.value == self.value  # type: ignore[attr-defined]

    def __lt__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.value < other.value  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.value))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.value,))


class NI(_Tagged):
    """A namespaced identifier, ``~:namespace:identifier`` on the wire (``value`` is what follows ``~:``).

    The namespace is the part before the first ``:``; an NI without one is in the global namespace.
    """

    __slots__ = ()

    @property
    def namespace(self) -> str | None:
        ns, sep, _ = self.value.partition(":")
        return ns if sep else None

    @property
    def identifier(self) -> str:
        _, sep, rest = self.value.partition(":")
        return rest if sep else self.value

    @classmethod
    def of(cls, namespace: str | None, identifier: str) -> NI:
        return cls(identifier if namespace is None else f"{namespace}:{identifier}")


class URI(_Tagged):
    """A URI, ``~r<uri>`` on the wire."""

    __slots__ = ()


class Datetime(_dt.datetime):
    """A datetime with nanosecond precision (UTC when decoded from the wire).

    ``nanosecond`` holds the nanoseconds beyond ``microsecond`` (0-999). Equality, ordering and hashing
    take them into account; plain ``datetime`` arithmetic drops them.
    """

    __slots__ = ("nanosecond",)
    nanosecond: int

    def __new__(
        cls,
        year: int,
        month: int,
        day: int,
        hour: int = 0,
        minute: int = 0,
        second: int = 0,
        microsecond: int = 0,
        tzinfo: _dt.tzinfo | None = UTC,
        *,
        fold: int = 0,
        nanosecond: int = 0,
    ) -> Datetime:
        if not 0 <= nanosecond <= 999:
            raise ValueError("nanosecond must be in 0..999")
        self = super().__new__(cls, year, month, day, hour, minute, second, microsecond, tzinfo, fold=fold)
        self.nanosecond = nanosecond
        return self

    @classmethod
    def from_datetime(cls, value: _dt.datetime, nanosecond: int = 0) -> Datetime:
        """The same instant as ``value`` (naive values are taken as UTC)."""
        if nanosecond == 0 and isinstance(value, Datetime):
            nanosecond = value.nanosecond  # before astimezone, which drops it
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return cls(value.year, value.month, value.day, value.hour, value.minute, value.second,
                   value.microsecond, nanosecond=nanosecond)

    @classmethod
    def from_epoch_ns(cls, ns: int) -> Datetime:
        micros, nanos = divmod(ns, 1000)
        return cls.from_datetime(EPOCH + _dt.timedelta(microseconds=micros), nanos)

    @property
    def epoch_ns(self) -> int:
        delta = (self if self.tzinfo is not None else _dt.datetime.replace(self, tzinfo=UTC)) - EPOCH
        return ((delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1000 + self.nanosecond

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _dt.datetime):
            return _dt.datetime.__eq__(self, other) and self.nanosecond == getattr(other, "nanosecond", 0)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, _dt.datetime):
            return NotImplemented
        if _dt.datetime.__eq__(self, other):
            return self.nanosecond < getattr(other, "nanosecond", 0)
        return _dt.datetime.__lt__(self, other)

    def __le__(self, other: object) -> bool:
        lt = self.__lt__(other)
        return lt if lt is NotImplemented else (lt or self == other)

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, _dt.datetime):
            return NotImplemented
        return not self.__le__(other)

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, _dt.datetime):
            return NotImplemented
        return not self.__lt__(other)

    def __hash__(self) -> int:
        # Without nanoseconds it equals a plain datetime, so it must hash like one.
        plain = _dt.datetime.__hash__(self)
        return hash((plain, self.nanosecond)) if self.nanosecond else plain

    def __repr__(self) -> str:
        from ._transit import format_datetime

        return f"Datetime({format_datetime(self)!r})"

    def replace(self, *args: Any, nanosecond: int | None = None, **kwargs: Any) -> Datetime:
        result = super().replace(*args, **kwargs)
        result.nanosecond = self.nanosecond if nanosecond is None else nanosecond
        return result

    def __reduce_ex__(self, protocol: object) -> tuple[Any, ...]:
        fields = (self.year, self.month, self.day, self.hour, self.minute, self.second, self.microsecond)
        return (_rebuild, (fields, self.tzinfo, self.fold, self.nanosecond))


def _rebuild(fields: tuple[int, ...], tzinfo: _dt.tzinfo | None, fold: int, nanosecond: int) -> Datetime:
    return Datetime(*fields, tzinfo, fold=fold, nanosecond=nanosecond)


EPOCH = _dt.datetime(1970, 1, 1, tzinfo=UTC)
