"""Catalogued models: served, not stored, declared by the models config; both backends.

The registry records the encoder and LLM endpoints a process is configured with on every
start (:meth:`ModelRegistry.catalogue`). These tests check that doing so again costs one
read and writes nothing, that a newly declared version takes production with the same
history rows and audit entries as any stage change, and that a person's retirement holds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from typer.testing import CliRunner

from helpers import make_settings
from sluice.cli.main import app
from sluice.config import Settings
from sluice.errors import ModelError, ModelIntegrityError, PromotionError
from sluice.governance import entries_for
from sluice.models import ModelRegistry
from sluice.runtime import Runtime
from sluice.store import open_store

DECLARED = "declared in the models config"
ONNX = "local:/models/minilm.onnx"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _declare(registry: ModelRegistry, version: str, **kw: Any) -> Any:
    """Catalogue the encoder ``enc`` at ``version``, as a process start would."""
    return registry.catalogue(
        "enc",
        version,
        "encoder",
        endpoint=kw.pop("endpoint", ONNX),
        sha256=kw.pop("sha256", _sha(version)),
        card=kw.pop("card", {"provenance": "built from all-MiniLM-L6-v2"}),
        **kw,
    )


def _changes(registry: ModelRegistry) -> list[tuple[str, str | None, str, str, str | None]]:
    return [
        (h.version, h.from_stage, h.to_stage, h.actor, h.reason) for h in registry.history("enc")
    ]


def _audit(registry: ModelRegistry, *versions: str) -> list[Any]:
    with registry.store.read() as conn:
        return entries_for(conn, [f"enc@{v}" for v in versions])


@pytest.fixture
def registry(settings: Settings) -> Iterator[ModelRegistry]:
    store = open_store(settings)
    yield ModelRegistry(store)
    store.dispose()


def test_cataloguing_again_is_one_read_and_writes_nothing(registry: ModelRegistry) -> None:
    record = _declare(registry, "1.0.0+q2", card={"metrics": {"dim": 384}})
    assert (record.version, record.kind, record.stage) == ("1.0.0+q2", "encoder", "production")
    assert record.catalogued and record.endpoint == ONNX and record.sha256 == _sha("1.0.0+q2")
    assert record.card == {"metrics": {"dim": 384}, "endpoint": ONNX, "catalogued": True}
    assert record.created_by == "model-gateway"
    assert _changes(registry) == [("1.0.0+q2", None, "production", "model-gateway", DECLARED)]
    assert [e.action for e in _audit(registry, "1.0.0+q2")] == [
        "model.catalogued",
        "model.stage_changed",
    ]

    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "model_" in statement or "audit_log" in statement:
            statements.append(statement.split()[0].upper())

    epoch = registry.stage_epoch()
    event.listen(registry.store.engine, "before_cursor_execute", seen)
    try:
        again = _declare(registry, "1.0.0+q2", card={"changed": "ignored"})
    finally:
        event.remove(registry.store.engine, "before_cursor_execute", seen)
    assert statements == ["SELECT"]
    assert again == record  # the first card is kept
    assert registry.stage_epoch() == epoch
    assert len(_audit(registry, "1.0.0+q2")) == 2


def test_a_new_version_takes_production_and_a_declared_older_one_comes_back(
    registry: ModelRegistry,
) -> None:
    _declare(registry, "a")
    epoch = registry.stage_epoch()
    b = _declare(registry, "b", actor="worker:w1")
    assert b.stage == "production" and registry.get("enc", "a").stage == "retired"
    assert registry.serving("enc").production.version == "b"
    assert registry.stage_epoch() == epoch + 2
    assert _changes(registry)[1:] == [
        ("a", "production", "retired", "worker:w1", f"superseded by enc@b, {DECLARED}"),
        ("b", None, "production", "worker:w1", DECLARED),
    ]

    # The config goes back to a (say, a rolled-back deployment): a serves again.
    restored = _declare(registry, "a")
    assert restored.stage == "production" and registry.get("enc", "b").stage == "retired"
    assert _changes(registry)[3:] == [
        ("b", "production", "retired", "model-gateway", f"superseded by enc@a, {DECLARED}"),
        ("a", "retired", "production", "model-gateway", DECLARED),
    ]
    assert [r.stage for r in registry.list("enc")].count("production") == 1

    # Every change has its audit entry, with the same facts as its history row.
    history = registry.history("enc")
    entries = _audit(registry, "a", "b")
    assert [e.action for e in entries].count("model.catalogued") == 2
    changes = [e for e in entries if e.action == "model.stage_changed"]
    assert len(changes) == len(history) == 5
    for row, entry in zip(history, changes, strict=True):
        details = entry.details_dict()
        assert entry.target == f"enc@{row.version}" and entry.actor == row.actor
        assert (details["from"], details["to"], details["reason"]) == (
            row.from_stage,
            row.to_stage,
            row.reason,
        )


def test_other_bytes_under_the_same_version_are_refused(registry: ModelRegistry) -> None:
    _declare(registry, "served")
    epoch = registry.stage_epoch()
    with pytest.raises(ModelIntegrityError, match="now serves different bytes") as caught:
        _declare(registry, "served", sha256=_sha("other weights"))
    assert "under the same version" in caught.value.message
    assert caught.value.hint and "declare a new version of enc" in caught.value.hint
    assert registry.get("enc", "served").sha256 == _sha("served")
    assert registry.stage_epoch() == epoch
    # Upper-case hex is the same digest; anything else is refused before any read.
    assert _declare(registry, "served", sha256=_sha("served").upper()).stage == "production"
    for bad in ("", "abc", "z" * 64):
        with pytest.raises(ModelError, match="not 64 hex digits"):
            _declare(registry, "x", sha256=bad)
    with pytest.raises(ModelError, match="endpoint are needed"):
        _declare(registry, "x", endpoint="")


def test_a_version_a_person_retired_stays_retired(registry: ModelRegistry) -> None:
    assert not registry.is_retired("enc", "a")  # unknown
    _declare(registry, "a")
    assert not registry.is_retired("enc", "a")
    # The production version of a catalogued name can be retired: the config decides
    # what serves, and processes that declare a retired version refuse it.
    registry.retire("enc", "a", actor="cli:ana", reason="wrong tokenizer")
    assert registry.is_retired("enc", "a")
    epoch = registry.stage_epoch()
    again = _declare(registry, "a")
    assert again.stage == "retired" and registry.stage_epoch() == epoch
    with pytest.raises(PromotionError, match="already retired"):
        registry.retire("enc", "a", actor="cli:ana")

    b = _declare(registry, "b")  # nothing in production to supersede
    assert b.stage == "production"
    assert _changes(registry)[-1] == ("b", None, "production", "model-gateway", DECLARED)
    assert _declare(registry, "a").stage == "retired"

    # A version the config superseded can be retired by a person too; then it stays so.
    _declare(registry, "c")
    assert registry.get("enc", "b").stage == "retired"
    registry.retire("enc", "b", actor="cli:bo", reason="leaks memory")
    assert _changes(registry)[-1] == ("b", "retired", "retired", "cli:bo", "leaks memory")
    assert _declare(registry, "b").stage == "retired" and registry.is_retired("enc", "b")
    assert registry.production("enc").version == "c" and not registry.is_retired("enc", "c")


def test_catalogued_versions_are_not_stored_promoted_or_mixed(registry: ModelRegistry) -> None:
    _declare(registry, "a")
    _declare(registry, "b")
    with pytest.raises(ModelError, match="served, not stored") as caught:
        registry.artifact_path("enc", "b")
    assert ONNX in caught.value.message and caught.value.hint
    for version, to in (("a", "production"), ("b", "canary"), ("a", "canary")):
        with pytest.raises(PromotionError, match="no evaluation to promote on") as refused:
            registry.promote("enc", version, to=to, actor="cli:ana")  # type: ignore[arg-type]
        assert "models config" in refused.value.message
    with pytest.raises(PromotionError, match="cannot roll back enc: enc is catalogued"):
        registry.rollback("enc", actor="cli:ana")

    # A name holds stored or catalogued versions, never both.
    with pytest.raises(ModelError, match="enc is served"):
        registry.register("enc", "encoder", b"weights", {})
    registry.register("head", "classifier", b"weights", {})
    with pytest.raises(ModelError, match=r"head holds trained versions stored .*\(1\)"):
        registry.catalogue("head", "2", "classifier", endpoint=ONNX, sha256=_sha("2"), card={})
    with pytest.raises(ModelError, match="head@1: it is a trained version stored in the registry"):
        registry.catalogue("head", "1", "classifier", endpoint=ONNX, sha256=_sha("1"), card={})
    assert [r.version for r in registry.list("enc")] == ["b", "a"]


def test_processes_starting_together_catalogue_a_version_once(registry: ModelRegistry) -> None:
    from concurrent.futures import ThreadPoolExecutor

    _declare(registry, "old")
    with ThreadPoolExecutor(8) as pool:
        records = list(pool.map(lambda i: _declare(registry, "new", actor=f"w{i}"), range(8)))
    assert {r.stage for r in records} == {"production"}
    assert [(h.version, h.to_stage) for h in registry.history("enc")] == [
        ("old", "production"),
        ("old", "retired"),
        ("new", "production"),
    ]


# -- the command line ---------------------------------------------------------------------
@pytest.fixture
def cli(
    tmp_path: Path, database_url: str | None, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """`sluice` on this test's store, with encoder versions 1 (retired) and 2 catalogued."""
    with Runtime(make_settings(tmp_path / "home", database_url, model_cache)) as rt:
        for version in ("1", "2"):
            _declare(rt.models, version, endpoint=f"local:/m/{version}.onnx")
    monkeypatch.setenv("SLUICE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SLUICE_MODEL_CACHE", str(model_cache))
    monkeypatch.setenv("SLUICE_LOCAL_ACTOR", "ana")
    if database_url is not None:
        monkeypatch.setenv("SLUICE_DATABASE_URL", database_url)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_list_and_show_describe_catalogued_models(cli: Any) -> None:
    listed = cli("models", "list")
    assert listed.exit_code == 0, listed.output
    assert "enc@2" in listed.stdout and "local:/m/" in listed.stdout  # the endpoint
    assert "rows" not in listed.stdout and "0.0%" not in listed.stdout
    as_json = json.loads(cli("models", "list", "--json").stdout)
    assert [(m["version"], m["stage"], m["card"]["endpoint"]) for m in as_json] == [
        ("2", "production", "local:/m/2.onnx"),
        ("1", "retired", "local:/m/1.onnx"),
    ]

    shown = cli("models", "show", "enc")
    assert shown.exit_code == 0, shown.output
    assert "enc@2" in shown.stdout and "catalogued by model-gateway" in shown.stdout
    assert "served at local:/m/2.onnx" in shown.stdout and "card: provenance" in shown.stdout
    assert "sluice models evaluate" not in shown.stdout
    detail = json.loads(cli("models", "show", "enc", "1", "--json").stdout)
    assert detail["serving"] == {"production": "2", "canary": None}
    assert [h["to_stage"] for h in detail["history"]] == ["production", "retired"]


def test_promote_rollback_and_retire_from_the_command_line(cli: Any) -> None:
    refused = cli("models", "promote", "enc", "1", "--json")
    assert refused.exit_code == 1
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "promotion_refused" and "models config" in error["message"]
    assert "declare the version of enc" in error["hint"]
    out = cli("models", "rollback", "enc")
    assert out.exit_code == 1 and "cannot roll back enc" in out.stderr

    out = cli("models", "retire", "enc", "2", "--reason", "bad build")
    assert out.exit_code == 0, out.output
    assert "enc@2 is retired" in out.stdout and "will refuse it" in out.stdout
    out = cli("models", "rollback", "enc")  # no production now; still the config's call
    assert out.exit_code == 1 and "cannot roll back enc" in out.stderr
