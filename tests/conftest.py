"""Shared fixtures: a fresh store per test on SQLite and on PostgreSQL, a trained model.

Why a fresh database per test: DBOS keeps its tables in the store's database, and a
durable engine left over from one test must never see another test's runs. SQLite gets a
new file under ``tmp_path``; PostgreSQL a new database on the server named by
``SLUICE_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``),
dropped afterwards.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))  # helpers and the toy pipelines used by execution tests

from helpers import make_settings, postgres_database
from sluice.config import Settings


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests pass configuration explicitly; stray SLUICE_* variables must not leak in."""
    for key in list(os.environ):
        if key.startswith("SLUICE_") and key != "SLUICE_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One encoder build per test session (it takes a few seconds)."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Runs the test once per store backend."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str | None]:
    """None (the SQLite default under the test's home) or a fresh PostgreSQL database."""
    if backend == "sqlite":
        yield None
    else:
        yield from postgres_database()


@pytest.fixture
def postgres_settings(tmp_path: Path, model_cache: Path) -> Iterator[Settings]:
    """Settings for a fresh PostgreSQL database, for tests of PostgreSQL-only behaviour."""
    for url in postgres_database():
        yield make_settings(tmp_path / "home", url, model_cache)


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None, model_cache: Path) -> Settings:
    """Settings for a fresh store on the test's backend."""
    return make_settings(tmp_path / "home", database_url, model_cache)


@pytest.fixture
def sqlite_settings(tmp_path: Path, model_cache: Path) -> Settings:
    """Settings for a fresh SQLite store, for tests that do not depend on the backend."""
    return make_settings(tmp_path / "home", None, model_cache)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Any]:
    """A runtime (store migrated, pipelines declared, review desk plugged in)."""
    from sluice.runtime import Runtime

    rt = Runtime(settings)
    try:
        yield rt
    finally:
        rt.close()


@pytest.fixture(scope="session")
def trained_intent_model(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Any:
    """The support-intent classifier trained once per session on the shipped sample.

    Returns the artifact bytes and card; :func:`install_model` registers them in a
    test's own store in milliseconds.
    """
    from sluice.models import read_labelled_csv, train_classifier
    from sluice.pipelines.support_triage import MODEL_NAME, sample_path
    from sluice.runtime import Runtime

    home = tmp_path_factory.mktemp("train-home")
    with Runtime(make_settings(home, None, model_cache)) as rt:
        record = train_classifier(
            rt.settings, rt.models, MODEL_NAME, read_labelled_csv(sample_path("train.csv"))
        )
        blob = rt.models.artifact_path(record.name, record.version).read_bytes()
    return {"name": record.name, "artifact": blob, "card": dict(record.card)}


@pytest.fixture
def intent_model(runtime: Any, trained_intent_model: dict[str, Any]) -> Any:
    """The session's trained classifier, registered as production in this test's store."""
    return runtime.models.register(
        trained_intent_model["name"],
        "classifier",
        trained_intent_model["artifact"],
        trained_intent_model["card"],
    )


_EXIT_STATUS = pytest.StashKey[int]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave at once if an engine thread outlived its test.

    DBOS runs workflow work in a ThreadPoolExecutor whose threads retry database calls
    until they succeed. A review wait that was mid-call when its test's database was
    dropped keeps retrying, and Python's exit joins those threads: the run would hang
    after reporting. By now every test has run and been reported, so exit without
    joining them, with pytest's own status.
    """
    import threading

    stuck = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if stuck and _EXIT_STATUS in config.stash:
        sys.stdout.flush()
        names = ", ".join(sorted(t.name for t in stuck))
        sys.stderr.write(f"conftest: leaving {len(stuck)} thread(s) behind at exit: {names}\n")
        sys.stderr.flush()
        os._exit(config.stash[_EXIT_STATUS])
