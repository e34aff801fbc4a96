from pathlib import Path

import pytest
from pydantic import ValidationError

from sluice.config import Settings


def test_defaults_put_state_under_sluice_home() -> None:
    s = Settings()
    assert s.home == Path(".sluice")
    assert s.resolved_database_url() == f"sqlite:///{Path('.sluice/sluice.db').resolve()}"
    assert not s.is_postgres
    assert s.data_dir == Path("../shared/data")


def test_environment_switches_to_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_DATABASE_URL", "postgresql://u@db:5432/x")
    monkeypatch.setenv("SLUICE_HOME", "/tmp/elsewhere")
    s = Settings()
    assert s.is_postgres and s.home == Path("/tmp/elsewhere")
    assert s.resolved_database_url() == "postgresql://u@db:5432/x"


def test_empty_database_url_means_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_DATABASE_URL", "")
    assert Settings().database_url is None


def test_invalid_values_are_refused_with_the_field_name() -> None:
    with pytest.raises(ValidationError, match="target_precision"):
        Settings(target_precision=1.5)
    with pytest.raises(ValidationError, match="batch_size"):
        Settings(batch_size=0)
