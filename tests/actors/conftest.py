"""Fixtures for the actor tests: the datasets of a fresh data directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from actors import Datasets


@pytest.fixture
def datasets(tmp_path: Path) -> Iterator[Datasets]:
    """An empty data directory's datasets, closed when the test ends."""
    registry = Datasets(tmp_path / "data")
    yield registry
    registry.close_all()
