"""Fixtures for the storage tests: a fresh dataset in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import storage


@pytest.fixture
def ds_path(tmp_path: Path) -> Path:
    """Where the test's dataset lives (reopen it with ``storage.Dataset(ds_path)``)."""
    return tmp_path / "dataset"


@pytest.fixture
def ds(ds_path: Path) -> Iterator[storage.Dataset]:
    """An empty dataset, checked for broken invariants when the test ends."""
    dataset = storage.Dataset(ds_path, "test")
    yield dataset
    if not dataset._closed:
        assert storage.check_dataset(dataset) == []
        dataset.close()
