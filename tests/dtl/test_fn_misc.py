"""Misc functions: literal, tuples, hash128, is-changed, completeness."""

from __future__ import annotations

from typing import Any

import pytest

from dtl import DTLCompileError, compile_expression
from dtl.testing import InMemoryLookup
from storage import Datetime

ABC = 79267961763742113019008347020647561319
DEF = 114697464648834432121201791580882983835


def ev(expr: Any, source: Any = None, lookup: Any = None) -> Any:
    return compile_expression(expr).evaluate(source, lookup=lookup)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["literal", "_S.foo"], "_S.foo"),
        (["literal", {"foo": 1, "bar": 2}], {"foo": 1, "bar": 2}),
        (["literal", ["upper", "hello"]], ["upper", "hello"]),
        (["literal", None], None),
        (["tuples"], []),
        (["tuples", "a", "b", "c"], [["a", "b", "c"]]),
        (["tuples", ["list", 1, 2], 3], [[1, 3], [2, 3]]),
        (["tuples", ["list", 1, 2], ["list", 3, None, 4, 5]], [[1, 3], [1, 4], [1, 5], [2, 3], [2, 4], [2, 5]]),
        (["tuples", None, "a"], []),
        (["tuples", ["list"], "a"], []),
    ],
)
def test_literal_and_tuples(expr: Any, expected: Any) -> None:
    assert ev(expr) == expected


def test_literal_is_not_evaluated() -> None:
    assert ev(["literal", "_S.foo"], {"foo": 1}) == "_S.foo"


def test_tuples_as_composite_join_key() -> None:
    source = {"y": 2020, "m": [1, 2]}
    assert ev(["eq", ["tuples", "_S.y", "_S.m"], ["list", ["list", 2020, 1], ["list", 2020, 2]]], source) is True


# -- hash128 (reference values from MurmurHash3 x64 128, unsigned) -----------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (["hash128", "murmur3", "abc"], ABC),
        (["hash128", "murmur3", ["combine", "abc", 123, "def"]], [ABC, DEF]),
        (["hash128", "murmur3", "~bYWJj"], ABC),  # bytes hash like their UTF-8 string
        (["hash128", "murmur3", ""], 0),
        (["hash128", "murmur3", "x" * 40], 142866243088470457663191553603699559521),  # two blocks + 8-byte tail
        (["hash128", "murmur3", "0123456789abcdef"], 180460130337483766233883404063256269223),  # one block, no tail
        (["hash128", "murmur3", 1, "abc"], 268601584061879628155514437400324104688),
        (["hash128", "murmur3", 42, "0123456789abcdefg"], 97707071441704609440657442513149741948),
        (["hash128", "murmur3", 7, "æøå"], 270394286764187138608948396103027331976),
        (["hash128", "murmur3", None], None),
        (["hash128", "murmur3", 123], None),
        (["hash128", "md5", "abc"], None),
        (["hash128", "murmur3", "seed", "abc"], None),
    ],
)
def test_hash128(expr: Any, expected: Any) -> None:
    assert ev(expr) == expected


def test_hash128_of_source_values() -> None:
    assert ev(["hash128", "murmur3", "_S.v"], {"v": ["abc", None, "def"]}) == [ABC, DEF]


def test_hash128_arity() -> None:
    with pytest.raises(DTLCompileError):
        compile_expression(["hash128", "murmur3"])
    with pytest.raises(DTLCompileError):
        compile_expression(["hash128", "murmur3", 1, "a", "b"])


# -- is-changed / completeness ---------------------------------------------------------------------


class VersionedLookup(InMemoryLookup):
    """A lookup that also knows previous versions and completeness values."""

    def __init__(self, previous: dict[str, dict[str, Any]], completeness: dict[tuple[str, str], Datetime]) -> None:
        super().__init__()
        self._previous = previous
        self._completeness = completeness

    def previous(self, entity: dict[str, Any]) -> dict[str, Any] | None:
        return self._previous.get(entity.get("_id"))  # type: ignore[arg-type]

    def completeness(self, via_dataset: str, dataset: str) -> Datetime | None:
        return self._completeness.get((via_dataset, dataset))


WHEN = Datetime(2015, 7, 28, 7, 46)
LOOKUP = VersionedLookup(
    {"1": {"_id": "1", "name": "a", "w": 1, "h": 2}, "2": {"_id": "2", "name": "b", "_deleted": True}},
    {("pipe1", "pipe1"): WHEN},
)


@pytest.mark.parametrize(
    ("expr", "source", "expected"),
    [
        (["is-changed", "_.name"], {"_id": "1", "name": "a"}, False),
        (["is-changed", "_.name"], {"_id": "1", "name": "A"}, True),
        (["is-changed", ["list", "_.h", "_.w"]], {"_id": "1", "name": "a", "w": 1, "h": 3}, True),
        (["is-changed", ["-", "_.h", "_.w"]], {"_id": "1", "w": 2, "h": 3}, False),
        (["is-changed", "_.name"], {"_id": "2", "name": "b"}, True),  # previous version deleted
        (["is-changed", "_.name"], {"_id": "1", "name": "a", "_deleted": True}, True),
        (["is-changed", "_.name"], {"_id": "3", "name": "a"}, None),  # no previous version
    ],
)
def test_is_changed(expr: Any, source: Any, expected: Any) -> None:
    assert ev(expr, source, LOOKUP) is expected


def test_is_changed_without_versioned_source_is_null() -> None:
    assert ev(["is-changed", "_.name"], {"_id": "1", "name": "x"}) is None
    assert ev(["is-changed", "_.name"], {"_id": "1", "name": "x"}, InMemoryLookup()) is None


def test_completeness() -> None:
    assert ev(["completeness", "pipe1", "pipe1"], lookup=LOOKUP) == WHEN
    assert ev(["completeness", "other", "pipe1"], lookup=LOOKUP) is None
    assert ev(["completeness", "pipe1", "pipe1"]) is None
    assert ev(["completeness", 1, "pipe1"], lookup=LOOKUP) is None
