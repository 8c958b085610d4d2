"""Expected output, sans IO (client-spec 8.3-8.7): prepare the current output, write it, compare it, explain it.

Entity lists (``json``/``excel`` specs) are filtered, number-normalised, stripped of deletes and sorted before
they are compared or written; ``xml`` bodies are compared and written pretty-printed (:func:`pretty_xml`); any
other endpoint's body is compared byte for byte.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any
from xml.dom import Node, minidom
from xml.parsers.expat import ExpatError

from ._specs import TestSpec

__all__ = ["DIFF_LINES", "KINDS", "LISTED_DIFFERENCES", "Comparison", "Difference", "Options", "compare",
           "compare_raw", "compare_xml", "drop_deletes", "filter_entity", "normalise_numbers", "prepare_current",
           "pretty_xml", "render_diff", "render_expected", "sort_entities"]

KINDS = ("missing-entity", "extra-entity", "changed", "missing-property", "extra-property", "length")
LISTED_DIFFERENCES = 50  # differences render_diff lists one by one
DIFF_LINES = 120  # lines of unified diff render_diff shows
VALUE_CHARS = 200  # characters of a value quoted in a difference
LONGEST_EXACT_INT = 16  # digits; longer ints lose precision through float64 (the Go client's bug)
_SEP = "\x00"  # joins the property names of a path for blacklist matching


@dataclass(frozen=True)
class Options:
    """Command-line switches: ``-no-large-int-bugs`` clears ``large_int_bugs``; ``-unicode-encoding`` sets
    ``unicode_encoding``; ``-disable-json-html-escape`` clears ``html_escape``."""

    large_int_bugs: bool = True
    unicode_encoding: bool = False
    html_escape: bool = True


@dataclass(frozen=True)
class Difference:
    """One difference. ``path`` is the property path (``a.b[2]``; empty for a whole entity). ``expected`` or
    ``current`` is None on the side where the entity or property is absent."""

    entity_id: Any
    path: str
    expected: Any
    current: Any
    kind: str


@dataclass(frozen=True)
class Comparison:
    """The outcome of comparing one spec's expected and current output; ``summary`` is the one-line verdict,
    ``expected_text``/``current_text`` the texts compared (None when they are not text)."""

    equal: bool
    differences: tuple[Difference, ...] = ()
    summary: str = ""
    expected_text: str | None = None
    current_text: str | None = None
    expected_name: str = "expected"
    current_name: str = "current"


# -- filtering (8.3) ------------------------------------------------------------------------------------------

def filter_entity(entity: dict, blacklist: Sequence[str]) -> dict:
    """A copy of ``entity`` without blacklisted properties and without underscore properties other than ``_id``
    and a true ``_deleted``, at every depth. Lists keep their parent's path."""
    patterns = _compile_blacklist(tuple(blacklist))
    return _filter(entity, (), patterns)


def _filter(value: Any, path: tuple[str, ...], patterns: tuple[re.Pattern[str], ...]) -> Any:
    if isinstance(value, dict):
        kept = {}
        for key, item in value.items():
            sub = (*path, key)
            if patterns and any(pattern.match(_SEP.join(sub)) for pattern in patterns):
                continue
            if key.startswith("_"):
                if key == "_id" or (key == "_deleted" and item is True):
                    kept[key] = item
                continue
            kept[key] = _filter(item, sub, patterns)
        return kept
    if isinstance(value, list):
        return [_filter(item, path, patterns) for item in value]
    return value


@lru_cache(maxsize=256)
def _compile_blacklist(blacklist: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(_blacklist_regex(pattern) for pattern in blacklist)


def _blacklist_regex(pattern: str) -> re.Pattern[str]:
    """A blacklist pattern as a regex over property names joined by ``_SEP``: shell wildcards as ``fnmatch``
    (``*`` crosses levels), ``[].`` means ``.*.``, ``.`` is a level separator (or a dot inside a name, as
    sesam-py matched it) and ``\\.`` only a dot inside a name (as the docs promise)."""
    pattern = pattern.replace("[].", ".*.")
    out, i, n = [], 0, len(pattern)
    while i < n:
        char = pattern[i]
        i += 1
        if char == "\\" and pattern[i:i + 1] == ".":
            out.append(r"\.")
            i += 1
        elif char == ".":
            out.append(f"[.{_SEP}]")
        elif char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[" and (end := _class_end(pattern, i)) > 0:
            out.append(_char_class(pattern[i:end]))
            i = end + 1
        else:
            out.append(re.escape(char))
    return re.compile("(?s:" + "".join(out) + r")\Z")


def _class_end(pattern: str, start: int) -> int:
    """The index of the ``]`` closing a ``[`` class that starts at ``start``; -1 when it is not closed."""
    j = start + 1 if pattern[start:start + 1] == "!" else start
    j += 1 if pattern[j:j + 1] == "]" else 0
    return pattern.find("]", j)


def _char_class(body: str) -> str:
    negate = body.startswith("!")
    body = body[1:] if negate else body
    if "." in body:
        body += _SEP
    escaped = "".join(char if char == "-" else re.escape(char) for char in body)
    return f"[{'^' if negate else ''}{escaped}]"


# -- numbers (8.4) and deletes (8.5) --------------------------------------------------------------------------

def normalise_numbers(value: Any, *, large_int_bugs: bool = True) -> Any:
    """A copy of ``value`` with integral floats and Decimals as ints (``25.0`` -> ``25``) and, with
    ``large_int_bugs``, ints of more than 16 characters pushed through float64 as the Go client did."""
    if isinstance(value, dict):
        return {key: normalise_numbers(item, large_int_bugs=large_int_bugs) for key, item in value.items()}
    if isinstance(value, list):
        return [normalise_numbers(item, large_int_bugs=large_int_bugs) for item in value]
    if isinstance(value, float | Decimal):
        if str(value).endswith(".0"):
            return normalise_numbers(int(value), large_int_bugs=large_int_bugs)
        return value
    if large_int_bugs and type(value) is int and len(str(value)) > LONGEST_EXACT_INT:
        try:
            return int(Decimal(repr(float(value))))
        except OverflowError:
            return value
    return value


def drop_deletes(current: list[dict], expected: list[dict] | None, ignore_deletes: bool) -> list[dict]:
    """``current`` without its ``_deleted: true`` entities when ``ignore_deletes``; in verify mode (``expected``
    given) those whose ``_id`` the expected output lists as deleted are kept."""
    if not ignore_deletes:
        return list(current)
    expected_deletes = [entity.get("_id") for entity in expected or () if entity.get("_deleted") is True]
    return [entity for entity in current
            if entity.get("_deleted") is not True or (expected is not None and entity.get("_id") in expected_deletes)]


# -- sorting (8.6) --------------------------------------------------------------------------------------------

def sort_entities(entities: list[dict], fields: Sequence[str], *, unicode_encoding: bool = False) -> list[dict]:
    """``entities`` sorted by the values of ``fields`` (objects as key-sorted JSON), then by the whole entity as
    key-sorted JSON. Values of different JSON types are ordered null < number < string < list instead of failing."""

    def key(entity: dict) -> tuple:
        values = tuple(_sort_value(entity.get(field), unicode_encoding) for field in fields)
        return (*values, json.dumps(entity, ensure_ascii=unicode_encoding, sort_keys=True))

    return sorted(entities, key=key)


def _sort_value(value: Any, unicode_encoding: bool) -> tuple:
    if value is None:
        return (0,)
    if isinstance(value, bool | int | float | Decimal):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, dict):
        return (2, json.dumps(value, ensure_ascii=unicode_encoding, sort_keys=True))
    if isinstance(value, list):
        return (3, tuple(_sort_value(item, unicode_encoding) for item in value))
    return (4, str(value))


# -- entity lists: prepare, write, compare (8.6, 8.7) ---------------------------------------------------------

def prepare_current(entities: list[dict], spec: TestSpec, expected: list[dict] | None, options: Options) -> list[dict]:
    """The current output as it is compared or written: filtered, numbers fixed, deletes dropped, sorted.
    ``expected`` is the expected output in verify mode and None in update mode."""
    current = [normalise_numbers(filter_entity(entity, spec.blacklist), large_int_bugs=options.large_int_bugs)
               for entity in entities]
    current = drop_deletes(current, expected, spec.ignore_deletes)
    return sort_entities(current, spec.fields_to_sort_by, unicode_encoding=options.unicode_encoding)


def render_expected(entities: list[dict], options: Options) -> bytes:
    """``entities`` as an expected-output file: sorted keys, 2-space indent, ``\\n`` at the end and, unless
    ``options.html_escape`` is off, ``<``, ``>`` and ``&`` as ``\\u003c``, ``\\u003e``, ``\\u0026``."""
    text = json.dumps(entities, indent=2, sort_keys=True, ensure_ascii=options.unicode_encoding) + "\n"
    data = text.encode("utf-8")
    if options.html_escape:
        data = data.replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")
    return data


def _compare_text(entities: list[dict]) -> str:
    return json.dumps(entities, indent=2, sort_keys=True, ensure_ascii=False)


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def compare(expected: list[dict], current: list[dict], spec: TestSpec, options: Options) -> Comparison:
    """Compare the expected output with the prepared current output: first the counts, then both sorted lists
    as key-sorted JSON text (so key order never matters, list order does, and ``1`` differs from ``1.0``)."""
    expected = sort_entities(expected, spec.fields_to_sort_by, unicode_encoding=options.unicode_encoding)
    current = sort_entities(current, spec.fields_to_sort_by, unicode_encoding=options.unicode_encoding)
    expected_text, current_text = _compare_text(expected), _compare_text(current)
    names = {"expected_text": expected_text, "current_text": current_text,
             "expected_name": spec.file_name, "current_name": "current-output.json"}
    if len(expected) != len(current):
        summary = (f"Length mismatch for test spec '{spec.spec_file}': "
                   f"expected {len(expected)} got {len(current)}")
    elif expected_text != current_text:
        summary = f"Content mismatch for test spec '{spec.file_name}'"
    else:
        return Comparison(True, summary=f"Test spec '{spec.spec_file}' passed", **names)
    differences = tuple(_entity_differences(expected, current, spec.fields_to_sort_by))
    return Comparison(False, differences, summary, **names)


def _entity_differences(expected: list[dict], current: list[dict], fields: Sequence[str]) -> list[Difference]:
    """Differences between two sorted entity lists, pairing entities by their sort fields (``_id``)."""

    def groups(entities: list[dict]) -> dict[str, list[dict]]:
        grouped: dict[str, list[dict]] = {}
        for entity in entities:
            grouped.setdefault(_dump([entity.get(field) for field in fields]), []).append(entity)
        return grouped

    wanted, got = groups(expected), groups(current)
    out: list[Difference] = []
    for key in dict.fromkeys([*wanted, *got]):
        left, right = wanted.get(key, []), got.get(key, [])
        for old, new in zip(left, right, strict=False):
            _value_differences(old.get("_id", new.get("_id")), "", old, new, out)
        out.extend(Difference(old.get("_id"), "", old, None, "missing-entity") for old in left[len(right):])
        out.extend(Difference(new.get("_id"), "", None, new, "extra-entity") for new in right[len(left):])
    return out


def _value_differences(entity_id: Any, path: str, old: Any, new: Any, out: list[Difference]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            sub = f"{path}.{key}" if path else key
            if key not in new:
                out.append(Difference(entity_id, sub, old[key], None, "missing-property"))
            elif key not in old:
                out.append(Difference(entity_id, sub, None, new[key], "extra-property"))
            else:
                _value_differences(entity_id, sub, old[key], new[key], out)
    elif isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            out.append(Difference(entity_id, path, old, new, "length"))
            return
        for index, (left, right) in enumerate(zip(old, new, strict=True)):
            _value_differences(entity_id, f"{path}[{index}]", left, right, out)
    elif _dump(old) != _dump(new):
        out.append(Difference(entity_id, path, old, new, "changed"))


# -- xml and raw bodies (8.7) ---------------------------------------------------------------------------------

def compare_xml(expected: bytes, current: bytes, spec: TestSpec) -> Comparison:
    """Compare two XML bodies pretty-printed (:func:`pretty_xml`); byte for byte when either does not parse."""
    try:
        expected_text = pretty_xml(expected).decode("utf-8")
        current_text = pretty_xml(current).decode("utf-8")
    except ValueError:
        return compare_raw(expected, current, spec, current_name="current_data.xml")
    if expected_text == current_text:
        return Comparison(True, summary=f"Test spec '{spec.spec_file}' passed")
    return Comparison(False, summary=f"Content mismatch for test spec '{spec.file_name}'",
                      expected_text=expected_text, current_text=current_text,
                      expected_name=spec.file_name, current_name="current_data.xml")


def compare_raw(expected: bytes, current: bytes, spec: TestSpec, *, current_name: str = "current_data.txt"
                ) -> Comparison:
    """Compare two bodies byte for byte; on a mismatch the texts are kept as UTF-8, or else as Latin-1."""
    if expected == current:
        return Comparison(True, summary=f"Test spec '{spec.spec_file}' passed")
    try:
        texts = expected.decode("utf-8"), current.decode("utf-8")
    except UnicodeDecodeError:
        texts = expected.decode("latin-1"), current.decode("latin-1")
    return Comparison(False, summary=f"Content mismatch for test spec '{spec.file_name}'",
                      expected_text=texts[0], current_text=texts[1],
                      expected_name=spec.file_name, current_name=current_name)


def pretty_xml(data: bytes) -> bytes:
    """An XML document's root element re-serialised as UTF-8 the way lxml's ``pretty_print`` does it (libxml2:
    an element's children go on indented lines only when none of them is text), after an XML declaration when
    the document had one. Raises ValueError when ``data`` is not well-formed XML."""
    try:
        document = minidom.parseString(data)
    except (ExpatError, ValueError) as exc:
        raise ValueError(f"not well-formed XML: {exc}") from None
    out: list[str] = []
    if document.version is not None:
        standalone = {True: " standalone='yes'", False: " standalone='no'"}.get(document.standalone, "")
        out.append(f"<?xml version='{document.version}' encoding='utf-8'{standalone}?>\n")
    _write_xml(document.documentElement, out, 0, True)
    out.append("\n")
    return "".join(out).encode("utf-8")


_TEXT_NODES = (Node.TEXT_NODE, Node.CDATA_SECTION_NODE, Node.ENTITY_REFERENCE_NODE)
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTR_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                               "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


def _write_xml(node: Any, out: list[str], level: int, indent: bool) -> None:
    kind = node.nodeType
    if kind in (Node.TEXT_NODE, Node.CDATA_SECTION_NODE):
        out.append(node.data.translate(_TEXT_ESCAPES))
    elif kind == Node.COMMENT_NODE:
        out.append(f"<!--{node.data}-->")
    elif kind == Node.PROCESSING_INSTRUCTION_NODE:
        out.append(f"<?{node.target} {node.data}?>" if node.data else f"<?{node.target}?>")
    elif kind == Node.ELEMENT_NODE:
        attributes = sorted(node.attributes.items(), key=lambda item: not _is_namespace(item[0]))
        out.append(f"<{node.tagName}")
        out.extend(f' {name}="{(value or "").translate(_ATTR_ESCAPES)}"' for name, value in attributes)
        children = node.childNodes
        if not children:
            out.append("/>")
            return
        out.append(">")
        indent = indent and not any(child.nodeType in _TEXT_NODES for child in children)
        for child in children:
            if indent:
                out.append("\n" + "  " * (level + 1))
            _write_xml(child, out, level + 1, indent)
        if indent:
            out.append("\n" + "  " * level)
        out.append(f"</{node.tagName}>")


def _is_namespace(name: str) -> bool:
    return name == "xmlns" or name.startswith("xmlns:")


# -- explaining a comparison ----------------------------------------------------------------------------------

def render_diff(comparison: Comparison, *, summary: bool = True) -> str:
    """A readable account of a failed comparison: the summary line (unless ``summary`` is false), one line per
    difference naming the entity and the property, then a unified diff of the compared texts (both capped)."""
    if comparison.equal:
        return comparison.summary if summary else ""
    lines = [comparison.summary] if summary and comparison.summary else []
    shown = comparison.differences[:LISTED_DIFFERENCES]
    lines.extend(_describe(difference) for difference in shown)
    if len(comparison.differences) > len(shown):
        lines.append(f"... and {len(comparison.differences) - len(shown)} more differences")
    if comparison.expected_text is not None and comparison.current_text is not None:
        diff = list(difflib.unified_diff(_lines(comparison.expected_text), _lines(comparison.current_text),
                                         fromfile=comparison.expected_name, tofile=comparison.current_name,
                                         lineterm=""))
        lines.extend(diff[:DIFF_LINES])
        if len(diff) > DIFF_LINES:
            lines.append(f"... ({len(diff) - DIFF_LINES} more diff lines)")
    return "\n".join(lines)


def _lines(text: str) -> list[str]:
    """``text`` split at ``\\n``, a carriage return shown as ``\\r`` so that line-ending changes are visible."""
    return [line.replace("\r", "\\r") for line in text.split("\n")]


def _describe(difference: Difference) -> str:
    entity = f"entity {_quote_id(difference.entity_id)}"
    where = f"{entity}: property '{difference.path}'"
    expected, current = _show(difference.expected), _show(difference.current)
    if difference.kind == "missing-entity":
        return f"{entity}: expected, but not in the current output"
    if difference.kind == "extra-entity":
        return f"{entity}: in the current output, but not expected"
    if difference.kind == "missing-property":
        return f"{where}: expected {expected}, but it is missing"
    if difference.kind == "extra-property":
        return f"{where}: not expected, got {current}"
    if difference.kind == "length":
        return (f"{where}: expected {len(difference.expected)} items {expected}, "
                f"got {len(difference.current)} items {current}")
    return f"{where}: expected {expected}, got {current}"


def _quote_id(entity_id: Any) -> str:
    if entity_id is None:
        return "without _id"
    return f"'{entity_id}'" if isinstance(entity_id, str) else _show(entity_id)


def _show(value: Any) -> str:
    text = _dump(value)
    return text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS] + "..."
