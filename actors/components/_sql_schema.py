"""The ``schema_definition`` of a ``sql`` sink (node-spec 8.9): its JSON Schema, and the table it describes.

Each column definition maps an entity property (``source_property``, default the column's ``name``) to a
column of a ``type``: ``string`` (``max_size`` characters, else unbounded text), ``integer`` (a big integer,
or a small one when ``max_value``/``min_value`` fit 32 bits), ``decimal`` (``precision``, ``scale``),
``float``, ``binary``, ``datetime``, ``date``, ``time``, ``uuid`` or ``boolean``; ``allow_null`` (default
true, false for key columns), ``primary_key``, ``index`` and a ``default`` (a literal the database fills in).
At least one column is a primary key. ``sesam-timestamp`` style columns are ordinary definitions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy

__all__ = ["COLUMN_TYPES", "SCHEMA_DEFINITION", "ColumnDefinition", "parse_schema_definition", "table_of"]

COLUMN_TYPES = ("string", "integer", "decimal", "float", "binary", "datetime", "date", "time", "uuid", "boolean")
INT32 = 2 ** 31

SCHEMA_DEFINITION: dict[str, Any] = {
    "type": "array", "minItems": 1,
    "items": {
        "type": "object", "required": ["name", "type"],
        "properties": {
            "source_property": {"type": "string", "minLength": 1},
            "name": {"type": "string", "minLength": 1},
            "type": {"enum": list(COLUMN_TYPES)},
            "max_size": {"type": "integer", "minimum": 1},
            "min_size": {"type": "integer", "minimum": 0},
            "max_value": {},
            "min_value": {},
            "precision": {"type": "integer", "minimum": 1},
            "scale": {"type": "integer", "minimum": 0},
            "allow_null": {"type": "boolean"},
            "primary_key": {"type": "boolean"},
            "index": {"type": "boolean"},
            "default": {},
        },
    },
}


@dataclass(frozen=True)
class ColumnDefinition:
    """One column of a schema definition."""

    name: str
    source_property: str
    type: str
    primary_key: bool = False
    allow_null: bool = True
    index: bool = False
    max_size: int | None = None
    precision: int | None = None
    scale: int | None = None
    small: bool = False  # an integer column whose bounds fit 32 bits
    default: Any = None

    def sql_type(self) -> sqlalchemy.types.TypeEngine[Any]:
        kind = self.type
        if kind == "string":
            return sqlalchemy.String(self.max_size) if self.max_size else sqlalchemy.Text()
        if kind == "integer":
            return sqlalchemy.Integer() if self.small else sqlalchemy.BigInteger()
        if kind == "decimal":
            return sqlalchemy.Numeric(self.precision or 38, self.scale if self.scale is not None else 10)
        return {"float": sqlalchemy.Float(), "binary": sqlalchemy.LargeBinary(), "datetime": sqlalchemy.DateTime(),
                "date": sqlalchemy.Date(), "time": sqlalchemy.Time(), "uuid": sqlalchemy.Uuid(),
                "boolean": sqlalchemy.Boolean()}[kind]


def _bound(value: Any) -> int | None:
    return value if type(value) is int else None


def parse_schema_definition(definitions: Sequence[Mapping[str, Any]], where: str) -> list[ColumnDefinition]:
    """The column definitions (validated by the JSON Schema already); raises ValueError on a definition
    without a primary key or with a repeated column name."""
    columns = []
    for item in definitions:
        high, low = _bound(item.get("max_value")), _bound(item.get("min_value"))
        key = bool(item.get("primary_key", False))
        columns.append(ColumnDefinition(
            name=item["name"], source_property=item.get("source_property", item["name"]), type=item["type"],
            primary_key=key, allow_null=bool(item.get("allow_null", not key)) and not key,
            index=bool(item.get("index", False)), max_size=item.get("max_size"), precision=item.get("precision"),
            scale=item.get("scale"), small=high is not None and low is not None and low >= -INT32 and high < INT32,
            default=item.get("default")))
    names = [c.name for c in columns]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{where}: column {repeated[0]!r} is defined twice")
    if not any(c.primary_key for c in columns):
        raise ValueError(f"{where}: no column has \"primary_key\": true")
    return columns


def _server_default(value: Any) -> Any:
    """A ``default`` as DDL: text quoted, numbers (transit decimals too) and booleans as literals."""
    if value is None:
        return None
    if isinstance(value, bool):
        return sqlalchemy.text("TRUE" if value else "FALSE")
    if isinstance(value, int | float):
        return sqlalchemy.text(repr(value))
    if isinstance(value, str) and value.startswith("~f"):
        return sqlalchemy.text(str(Decimal(value[2:])))
    return str(value)


def table_of(name: str, schema: str | None, columns: Sequence[ColumnDefinition]) -> sqlalchemy.Table:
    """The table the definitions describe (for CREATE TABLE)."""
    metadata = sqlalchemy.MetaData()
    made = [sqlalchemy.Column(c.name, c.sql_type(), primary_key=c.primary_key, nullable=c.allow_null,
                              index=c.index or None, autoincrement=False,
                              server_default=_server_default(c.default))
            for c in columns]
    return sqlalchemy.Table(name, metadata, *made, schema=schema)
