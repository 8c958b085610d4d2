"""Miscellaneous functions (dtl-spec 6.16): ``hash128``, ``is-changed``, ``completeness``."""

from __future__ import annotations

import struct
from typing import Any

from ._context import Ctx, Evaluator
from ._registry import IGNORE, Call, apply_elementwise, expression, function, with_value
from ._values import equal

_MASK = (1 << 64) - 1
_C1 = 0x87C37B91114253D5
_C2 = 0x4CF5AD432745937F


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (64 - bits))) & _MASK


def _fmix(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _MASK
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _MASK
    return k ^ (k >> 33)


def murmur3_128(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x64 128-bit of ``data`` as an unsigned integer (``h2 << 64 | h1``)."""
    h1 = h2 = seed & _MASK
    blocks = len(data) // 16
    for i in range(blocks):
        k1, k2 = struct.unpack_from("<QQ", data, i * 16)
        h1 ^= (_rotl((k1 * _C1) & _MASK, 31) * _C2) & _MASK
        h1 = (((_rotl(h1, 27) + h2) & _MASK) * 5 + 0x52DCE729) & _MASK
        h2 ^= (_rotl((k2 * _C2) & _MASK, 33) * _C1) & _MASK
        h2 = (((_rotl(h2, 31) + h1) & _MASK) * 5 + 0x38495AB5) & _MASK
    tail = data[blocks * 16:]
    if len(tail) > 8:
        h2 ^= (_rotl((int.from_bytes(tail[8:], "little") * _C2) & _MASK, 33) * _C1) & _MASK
    if tail:
        h1 ^= (_rotl((int.from_bytes(tail[:8], "little") * _C1) & _MASK, 31) * _C2) & _MASK
    h1 ^= len(data)
    h2 ^= len(data)
    h1 = (h1 + h2) & _MASK
    h2 = (h2 + h1) & _MASK
    h1 = _fmix(h1)
    h2 = _fmix(h2)
    h1 = (h1 + h2) & _MASK
    h2 = (h2 + h1) & _MASK
    return (h2 << 64) | h1


@function("hash128", args=(2, 3))
def _hash128(algorithm: Any, *args: Any) -> Any:
    seed = args[0] if len(args) == 2 else 0
    if algorithm != "murmur3" or type(seed) is not int:
        return None

    def element(value: Any) -> Any:
        if type(value) is str:
            return murmur3_128(value.encode("utf-8"), seed)
        if isinstance(value, bytes):
            return murmur3_128(value, seed)
        return IGNORE

    return apply_elementwise(element, args[-1])


@expression("is-changed", args=1)
def _is_changed(call: Call) -> Evaluator:
    """Uses the lookup's optional ``previous(entity)`` (the previous version of a source entity)."""
    fn = call.compile(0)

    def evaluate(c: Ctx) -> Any:
        current = c.root.S
        previous_of = getattr(c.env.lookup, "previous", None)
        previous = previous_of(current) if previous_of is not None and type(current) is dict else None
        if previous is None:
            return None
        if current.get("_deleted") is True or previous.get("_deleted") is True:
            return True
        return not equal(with_value(c, fn, current), with_value(c, fn, previous))

    return evaluate


@expression("completeness", args=2)
def _completeness(call: Call) -> Evaluator:
    """Uses the lookup's optional ``completeness(via_dataset, dataset)``."""
    via = call.compile(0)
    dataset = call.compile(1)

    def evaluate(c: Ctx) -> Any:
        completeness = getattr(c.env.lookup, "completeness", None)
        via_id, dataset_id = via(c), dataset(c)
        if completeness is None or type(via_id) is not str or type(dataset_id) is not str:
            return None
        return completeness(via_id, dataset_id)

    return evaluate
