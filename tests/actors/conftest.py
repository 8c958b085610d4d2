"""Fixtures for the actor tests: the datasets of a fresh data directory; scratch SQL databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from actors import Datasets
from actors.testing import SQL_DIALECTS, ScratchDatabase, scratch_database


@pytest.fixture
def datasets(tmp_path: Path) -> Iterator[Datasets]:
    """An empty data directory's datasets, closed when the test ends."""
    registry = Datasets(tmp_path / "data")
    yield registry
    registry.close_all()


@pytest.fixture(params=SQL_DIALECTS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ScratchDatabase]:
    """A scratch database of each dialect in turn."""
    with scratch_database(request.param, tmp_path) as database:
        yield database


@pytest.fixture(params=[d for d in SQL_DIALECTS if d != "sqlite"])
def server_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ScratchDatabase]:
    """A scratch database on each database server (SQLite has no schemas, only attached databases)."""
    with scratch_database(request.param, tmp_path) as database:
        yield database


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[ScratchDatabase]:
    with scratch_database("postgresql", tmp_path) as database:
        yield database


@pytest.fixture
def maria(tmp_path: Path) -> Iterator[ScratchDatabase]:
    with scratch_database("mysql", tmp_path) as database:
        yield database


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[ScratchDatabase]:
    with scratch_database("sqlite", tmp_path) as database:
        yield database
