"""Opening LevelDB databases with options tuned for the node's write pattern.

Bulk appends of log and index entries throttle on LevelDB's level-0 limits with the default 4 MiB write
buffer; 64 MiB (one per database, two during a flush) measured about 5x faster here. The bloom filter
makes index misses (new ids) cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plyvel

__all__ = ["open_db", "TUNED_OPTIONS"]

TUNED_OPTIONS: dict[str, Any] = {
    "write_buffer_size": 64 << 20,
    "bloom_filter_bits": 10,
    "lru_cache_size": 32 << 20,
    "max_open_files": 256,
    "block_size": 16 << 10,
}


def open_db(path: str | Path, *, create: bool = True, **overrides: Any) -> plyvel.DB:
    """Open (and by default create) the LevelDB database at ``path``."""
    options = {**TUNED_OPTIONS, **overrides}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return plyvel.DB(str(path), create_if_missing=create, **options)
