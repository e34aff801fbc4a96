"""Knowledge fixtures: the real token counter, and a PostgreSQL server with pgvector."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import make_settings
from pgvector_server import fresh_database, pgvector_server
from sluice.config import Settings
from sluice.knowledge import TokenCounter, WordPieceCounter, default_token_counter


@pytest.fixture(scope="session")
def wordpiece() -> TokenCounter:
    counter = default_token_counter()
    assert isinstance(counter, WordPieceCounter), "the packaged tokenizer must be installed"
    return counter


@pytest.fixture(scope="session")
def pgvector_url() -> Iterator[str]:
    """One PostgreSQL 16 + pgvector server for the session (tests/pgvector_server.py)."""
    with pgvector_server() as url:
        yield url


@pytest.fixture
def pgvector_settings(pgvector_url: str, tmp_path: Path, model_cache: Path) -> Iterator[Settings]:
    """Settings for a fresh database on the pgvector server."""
    with fresh_database(pgvector_url) as url:
        yield make_settings(tmp_path / "home", url, model_cache)
