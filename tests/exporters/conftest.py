"""Fixtures shared by the exporter tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from finance_exporter.sources.postgres import PostgresSource
from support.datastores import Database


@pytest.fixture
def postgres(database: Database, request: pytest.FixtureRequest) -> Iterator[PostgresSource]:
    """The exporter role's Postgres source on a fresh database, named after the test module."""
    source = PostgresSource(database.exporter_url, f"test-{request.module.__name__}")
    yield source
    source.close()
