"""A real server on loopback per test: uvicorn in a thread, a fresh store behind it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api_server import LiveServer
from sluice.api import create_app
from sluice.governance import create_token


@pytest.fixture
def server(runtime: Any) -> Iterator[LiveServer]:
    """The API and review app over the test's runtime."""
    with LiveServer(create_app(runtime.settings, runtime=runtime)) as live:
        yield live


@pytest.fixture
def token_for(runtime: Any) -> Any:
    """``token_for(role, **scopes)``: a new token of that role."""

    def make(role: str, name: str | None = None, **scopes: Any) -> str:
        token, _ = create_token(
            runtime.store, name=name or f"{role}-test", role=role, created_by="test", **scopes
        )
        return token

    return make


@pytest.fixture
def client(server: LiveServer) -> Iterator[Any]:
    """``client(token)``: an httpx client for the live server with that bearer token."""
    clients: list[httpx.Client] = []

    def make(token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        c = httpx.Client(base_url=server.url, headers=headers, timeout=30)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()
