"""Schemathesis against the app's own OpenAPI document: no 5xx, every response as declared.

Bounded: a few dozen generated requests per operation, as an admin (so requests reach
the handlers instead of stopping at authorization), against the live server.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sluice.api import create_app
from sluice.config import Settings

pytestmark = pytest.mark.slow

schema = schemathesis.openapi.from_dict(create_app(Settings(home="/nonexistent")).openapi())
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def sqlite_server(sqlite_settings: Settings) -> Iterator[tuple[str, dict[str, str]]]:
    """The schema is the same on both stores: fuzz once, on SQLite."""
    from api_server import LiveServer
    from sluice.governance import create_token
    from sluice.runtime import Runtime

    with Runtime(sqlite_settings) as rt, LiveServer(create_app(rt.settings, runtime=rt)) as live:
        token, _ = create_token(rt.store, name="fuzz", role="admin", created_by="test")
        yield live.url, {"Authorization": f"Bearer {token}"}


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_schema(case: Any, sqlite_server: tuple[str, dict[str, str]]) -> None:
    url, headers = sqlite_server
    case.call_and_validate(base_url=url, headers=headers, checks=CHECKS)
