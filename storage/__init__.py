"""The entity model and the LevelDB dataset store (sans-IO: no Trio here).

Entities travel in *wire form* (JSON types, typed values as transit strings such as ``"~f22.10"``);
:func:`decode` and :func:`encode` convert to and from *typed* Python values for computing on them.
"""

from ._check import check_dataset
from ._datadir import DataDir, validate_dataset_id
from ._dataset import Dataset, EmptySourceError, FullRun, IndexFunction, WriteResult
from ._entity import EntityError, content_hash, prepare
from ._errors import DataDirInUse, DatasetDamaged, StorageError, StorageIOError, StorageWriteError
from ._json import JSONError, canonical, dumps, iter_json_entities, loads, parse_json
from ._leveldb import LevelDBOptions
from ._nodestore import NodeStore
from ._staging import Breaker, CircuitBreakerTripped
from ._transit import decode, encode, format_datetime, parse_datetime
from ._types import NI, URI, Datetime

__all__ = [
    "NI",
    "URI",
    "Breaker",
    "CircuitBreakerTripped",
    "DataDir",
    "DataDirInUse",
    "Dataset",
    "DatasetDamaged",
    "Datetime",
    "EmptySourceError",
    "EntityError",
    "FullRun",
    "IndexFunction",
    "JSONError",
    "LevelDBOptions",
    "NodeStore",
    "StorageError",
    "StorageIOError",
    "StorageWriteError",
    "WriteResult",
    "canonical",
    "check_dataset",
    "content_hash",
    "decode",
    "dumps",
    "encode",
    "format_datetime",
    "iter_json_entities",
    "loads",
    "parse_datetime",
    "parse_json",
    "prepare",
    "validate_dataset_id",
]
