"""Record-store backends for the provisioning tests: an SQLite file, or a database on a throwaway
PostgreSQL server (:mod:`tests.unit.provision.postgres`), one fresh database per test."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterator

import pytest

from tests.unit.provision.postgres import temporary_server

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The base URL of a PostgreSQL server started for this test session (skips without one)."""
    try:
        with temporary_server() as url:
            yield url
    except LookupError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A new, empty database on the session's server."""
    import psycopg

    name = f"store_{next(_databases)}"
    plain = postgres_server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(f"{plain}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{postgres_server}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The record store's URL on each backend the station supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'records.sqlite'}"
    return str(request.getfixturevalue("postgres_url"))
