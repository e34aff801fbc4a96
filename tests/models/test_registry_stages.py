"""Stages, the promotion gate and rollback, on both store backends.

Rules of the registry are checked with small fake artifacts and recorded evaluations;
the gate itself with real classifiers on the shipped support sample: the session's
production model, a candidate trained with another C (a genuinely good one) and one
trained on four examples per intent (a genuinely worse one).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import make_settings
from sluice.config import Settings
from sluice.errors import ModelNotFoundError, PromotionError
from sluice.governance import entries_for
from sluice.models import (
    LabelledData,
    ModelRegistry,
    evaluate_for_promotion,
    load_encoder,
    read_labelled_csv,
    train_classifier,
)
from sluice.pipelines.support_triage import MODEL_NAME, sample_path
from sluice.runtime import Runtime
from sluice.store import open_store


@pytest.fixture(scope="module")
def holdout() -> LabelledData:
    return read_labelled_csv(sample_path("test.csv"))


@pytest.fixture(scope="module")
def holdout_vectors(
    tmp_path_factory: pytest.TempPathFactory, model_cache: Path, holdout: LabelledData
) -> Any:
    """The held-out texts encoded once for the module (evaluations take them as given)."""
    settings = Settings(home=tmp_path_factory.mktemp("enc"), model_cache=model_cache)
    return load_encoder(settings).encode(holdout.texts)


def _train(home: Path, model_cache: Path, data: LabelledData, **params: Any) -> dict[str, Any]:
    with Runtime(make_settings(home, None, model_cache)) as rt:
        record = train_classifier(rt.settings, rt.models, MODEL_NAME, data, **params)
        blob = rt.models.artifact_path(record.name, record.version).read_bytes()
    return {"artifact": blob, "card": dict(record.card)}


@pytest.fixture(scope="module")
def good_candidate(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> dict[str, Any]:
    """Trained on the full sample with C=10 instead of 20: as good as production."""
    data = read_labelled_csv(sample_path("train.csv"))
    return _train(tmp_path_factory.mktemp("good"), model_cache, data, c=10.0)


@pytest.fixture(scope="module")
def worse_candidate(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> dict[str, Any]:
    """Trained on four examples per intent (72 of 990): clearly worse than production."""
    full = read_labelled_csv(sample_path("train.csv"))
    seen: dict[str, int] = {}
    texts, labels = [], []
    for text, label in zip(full.texts, full.labels, strict=True):
        if seen.get(label, 0) < 4:
            seen[label] = seen.get(label, 0) + 1
            texts.append(text)
            labels.append(label)
    tiny = LabelledData(texts, labels, f"{full.sha256}-4-per-label", "4 per label")
    return _train(tmp_path_factory.mktemp("worse"), model_cache, tiny, folds=2)


def _register(runtime: Any, model: dict[str, Any]) -> Any:
    return runtime.models.register(
        MODEL_NAME, "classifier", model["artifact"], model["card"], promote=False
    )


def _evaluate(runtime: Any, version: str, holdout: LabelledData, vectors: Any, **kw: Any) -> Any:
    return evaluate_for_promotion(
        kw.pop("settings", runtime.settings),
        runtime.models,
        MODEL_NAME,
        version,
        holdout,
        embeddings=vectors,
        created_by="cli:ana",
    )


@pytest.fixture
def registry(settings: Settings) -> Iterator[ModelRegistry]:
    """A bare registry for the stage rules (fake artifacts, recorded evaluations)."""
    store = open_store(settings)
    yield ModelRegistry(store)
    store.dispose()


def _passing(registry: ModelRegistry, version: str, baseline: str | None = "1") -> str:
    return registry.record_evaluation(
        "m",
        version,
        baseline_version=baseline,
        holdout_sha256="0" * 64,
        metrics={"gate": {"passed": True, "why": "recorded by the test"}},
        passed=True,
        created_by="cli:ana",
    ).id


# -- the gate, with real classifiers ----------------------------------------------------------
def test_promotion_is_refused_without_an_evaluation(
    runtime: Any, intent_model: Any, good_candidate: dict[str, Any]
) -> None:
    candidate = _register(runtime, good_candidate)
    for to in ("canary", "production"):
        with pytest.raises(PromotionError, match="has no evaluation against") as info:
            runtime.models.promote(MODEL_NAME, candidate.version, to=to, actor="cli:ana")
        assert f"sluice models evaluate {MODEL_NAME} {candidate.version}" in str(info.value.hint)
    assert runtime.models.get(MODEL_NAME, candidate.version).stage == "candidate"


def test_a_worse_candidate_fails_the_gate_and_is_refused(
    runtime: Any,
    intent_model: Any,
    worse_candidate: dict[str, Any],
    holdout: LabelledData,
    holdout_vectors: Any,
) -> None:
    candidate = _register(runtime, worse_candidate)
    evaluation = _evaluate(runtime, candidate.version, holdout, holdout_vectors)
    assert not evaluation.passed
    assert evaluation.baseline_version == intent_model.version
    assert evaluation.holdout_sha256 == holdout.sha256
    gate = evaluation.metrics["gate"]
    assert gate["items"] == round(gate["automation_rate"] * len(holdout.texts))
    assert gate["candidate_precision"] < gate["production_precision"] - gate["tolerance"]
    assert gate["tolerance"] == 0.0 and "below production's" in gate["why"]
    # At its own (lower) automation the worse model looks precise: only the comparison at
    # production's rate shows that it is worse.
    assert evaluation.metrics["candidate"]["automation"] < gate["automation_rate"]
    assert evaluation.metrics["production"]["holdout_rows"] == len(holdout.texts)
    with pytest.raises(PromotionError, match=r"did not pass the gate.*below production's"):
        runtime.models.promote(MODEL_NAME, candidate.version, to="canary", actor="cli:ana")

    # A tolerance wide enough lets it through, and says so.
    lenient = runtime.settings.model_copy(update={"promotion_precision_tolerance": 0.2})
    again = _evaluate(runtime, candidate.version, holdout, holdout_vectors, settings=lenient)
    assert again.passed and "minus the tolerance 0.2" in again.metrics["gate"]["why"]
    assert [e.id for e in runtime.models.evaluations(MODEL_NAME, candidate.version)] == [
        again.id,
        evaluation.id,
    ]


def test_a_good_candidate_goes_through_canary_to_production(
    runtime: Any,
    intent_model: Any,
    good_candidate: dict[str, Any],
    holdout: LabelledData,
    holdout_vectors: Any,
) -> None:
    candidate = _register(runtime, good_candidate)
    evaluation = _evaluate(runtime, candidate.version, holdout, holdout_vectors)
    gate = evaluation.metrics["gate"]
    assert evaluation.passed, gate["why"]
    assert gate["candidate_precision"] >= gate["production_precision"]
    assert 0 < gate["automation_rate"] < 1
    assert gate["production_threshold"] == evaluation.metrics["production"]["threshold"]

    epoch = runtime.models.stage_epoch()
    canary = runtime.models.promote(MODEL_NAME, candidate.version, to="canary", actor="cli:ana")
    assert canary.stage == "canary"
    serving = runtime.models.serving(MODEL_NAME)
    assert serving.production.version == intent_model.version
    assert serving.canary is not None and serving.canary.version == candidate.version
    assert runtime.models.stage_epoch() != epoch

    promoted = runtime.models.promote(
        MODEL_NAME, candidate.version, to="production", actor="cli:bo", reason="canary was fine"
    )
    assert promoted.stage == "production"
    serving = runtime.models.serving(MODEL_NAME)
    assert (serving.production.version, serving.canary) == (candidate.version, None)
    assert runtime.models.get(MODEL_NAME, intent_model.version).stage == "retired"
    last = runtime.models.history(MODEL_NAME)[-2:]
    assert [(h.version, h.from_stage, h.to_stage, h.actor) for h in last] == [
        (intent_model.version, "production", "retired", "cli:bo"),
        (candidate.version, "canary", "production", "cli:bo"),
    ]
    assert last[1].evaluation_id == evaluation.id and last[1].reason == "canary was fine"


def test_an_evaluation_against_an_older_production_does_not_count(
    runtime: Any,
    intent_model: Any,
    good_candidate: dict[str, Any],
    holdout: LabelledData,
    holdout_vectors: Any,
) -> None:
    second, third = _register(runtime, good_candidate), _register(runtime, good_candidate)
    assert _evaluate(runtime, second.version, holdout, holdout_vectors).passed
    assert _evaluate(runtime, third.version, holdout, holdout_vectors).passed
    runtime.models.promote(MODEL_NAME, third.version, to="production", actor="cli:ana")
    with pytest.raises(PromotionError, match=f"{MODEL_NAME}@{intent_model.version}, not with"):
        runtime.models.promote(MODEL_NAME, second.version, to="production", actor="cli:ana")
    fresh = _evaluate(runtime, second.version, holdout, holdout_vectors)
    assert fresh.baseline_version == third.version and fresh.passed
    assert runtime.models.promote(MODEL_NAME, second.version, to="canary", actor="cli:ana")


def test_with_no_production_version_an_evaluation_passes_trivially(
    runtime: Any, good_candidate: dict[str, Any], holdout: LabelledData, holdout_vectors: Any
) -> None:
    candidate = _register(runtime, good_candidate)  # promote=False: nothing serves yet
    with pytest.raises(ModelNotFoundError):
        runtime.models.serving(MODEL_NAME)
    evaluation = _evaluate(runtime, candidate.version, holdout, holdout_vectors)
    assert evaluation.passed and evaluation.baseline_version is None
    assert evaluation.metrics["production"] is None
    assert "passes trivially" in evaluation.metrics["gate"]["why"]
    runtime.models.promote(MODEL_NAME, candidate.version, to="production", actor="cli:ana")
    assert runtime.models.serving(MODEL_NAME).production.version == candidate.version


def test_the_production_version_is_not_evaluated_against_itself(
    runtime: Any, intent_model: Any, holdout: LabelledData, holdout_vectors: Any
) -> None:
    with pytest.raises(PromotionError, match="is the production version"):
        _evaluate(runtime, intent_model.version, holdout, holdout_vectors)


# -- the stage rules, with fake artifacts ---------------------------------------------------
def test_registration_is_a_recorded_stage_change(registry: ModelRegistry) -> None:
    assert registry.stage_epoch() == 0
    registry.register("m", "classifier", b"one", {}, created_by="cli:ana")
    registry.register("m", "classifier", b"two", {}, created_by="cli:ana")
    registry.register("m", "classifier", b"three", {}, created_by="cli:bo", promote=True)
    assert [
        (h.version, h.from_stage, h.to_stage, h.actor, h.reason) for h in registry.history("m")
    ] == [
        ("1", None, "production", "cli:ana", "registered"),
        ("2", None, "candidate", "cli:ana", "registered"),
        ("1", "production", "retired", "cli:bo", "superseded by m@3"),
        ("3", None, "production", "cli:bo", "registered"),
    ]
    assert registry.stage_epoch() == 4


def test_canary_slot_and_refused_changes(registry: ModelRegistry) -> None:
    for blob in (b"1", b"2", b"3"):
        registry.register("m", "classifier", blob, {})
    for version in ("2", "3"):
        _passing(registry, version)
    registry.promote("m", "2", to="canary", actor="cli:ana")
    registry.promote("m", "3", to="canary", actor="cli:ana")  # replaces the canary
    assert registry.get("m", "2").stage == "retired"
    assert registry.history("m")[-2].reason == "replaced as canary by m@3"
    serving = registry.serving("m")
    assert (serving.production.version, serving.canary and serving.canary.version) == ("1", "3")
    assert [r.stage for r in registry.list("m")].count("canary") == 1

    refused = [
        (("m", "3"), {"to": "canary"}, "already canary"),
        (("m", "2"), {"to": "production"}, "retired; a retired version comes back only"),
        (("m", "1"), {"to": "canary"}, "is the production version"),
        (("m", "1"), {"to": "production"}, "already production"),
        (("m", "9"), {"to": "canary"}, "no model m@9"),
        (("m", "3"), {"to": "retired"}, "cannot promote to 'retired'"),
    ]
    for args, kw, message in refused:
        with pytest.raises((PromotionError, ModelNotFoundError), match=message):
            registry.promote(*args, actor="cli:ana", **kw)

    epoch = registry.stage_epoch()
    registry.retire("m", "3", actor="cli:ana", reason="canary errors")
    assert registry.serving("m").canary is None and registry.stage_epoch() == epoch + 1
    with pytest.raises(PromotionError, match="already retired"):
        registry.retire("m", "3", actor="cli:ana")
    with pytest.raises(PromotionError, match="something must serve"):
        registry.retire("m", "1", actor="cli:ana")


def test_a_failing_latest_evaluation_overrules_an_earlier_pass(registry: ModelRegistry) -> None:
    registry.register("m", "classifier", b"1", {})
    registry.register("m", "classifier", b"2", {})
    _passing(registry, "2")
    registry.record_evaluation(
        "m",
        "2",
        baseline_version="1",
        holdout_sha256="1" * 64,
        metrics={"gate": {"passed": False, "why": "precision fell"}},
        passed=False,
        created_by="cli:ana",
    )
    with pytest.raises(PromotionError, match=r"did not pass the gate \(precision fell\)"):
        registry.promote("m", "2", to="production", actor="cli:ana")
    with pytest.raises(ModelNotFoundError, match="m@7"):
        _passing(registry, "2", baseline="7")


def test_rollback_restores_the_previous_production_and_walks_back(
    registry: ModelRegistry,
) -> None:
    registry.register("m", "classifier", b"1", {})
    with pytest.raises(PromotionError, match="no production version of m before m@1"):
        registry.rollback("m", actor="cli:ana")
    for version, baseline in (("2", "1"), ("3", "2")):
        registry.register("m", "classifier", version.encode(), {})
        _passing(registry, version, baseline)
        registry.promote("m", version, to="production", actor="cli:ana")
    assert registry.production("m").version == "3"

    epoch = registry.stage_epoch()
    restored = registry.rollback("m", actor="cli:bo", reason="complaints")
    assert (restored.version, restored.stage) == ("2", "production")
    assert registry.get("m", "3").stage == "retired"
    assert registry.stage_epoch() == epoch + 2
    assert [(h.version, h.to_stage, h.reason) for h in registry.history("m")[-2:]] == [
        ("3", "retired", "rolled back to m@2: complaints"),
        ("2", "production", "restored by rollback of m@3: complaints"),
    ]
    with pytest.raises(PromotionError, match="retired"):
        registry.promote("m", "3", to="production", actor="cli:ana")

    # Again: further back to 1, not forward to the version just rolled back.
    assert registry.rollback("m", actor="cli:bo").version == "1"
    assert registry.serving("m").production.version == "1"
    with pytest.raises(PromotionError, match="no production version of m before m@1"):
        registry.rollback("m", actor="cli:bo")


def test_every_stage_change_has_a_history_row_and_an_audit_entry(
    registry: ModelRegistry,
) -> None:
    registry.register("m", "classifier", b"1", {}, created_by="cli:ana")
    registry.register("m", "classifier", b"2", {}, created_by="cli:ana")
    evaluation = _passing(registry, "2")
    registry.promote("m", "2", to="canary", actor="cli:bo")
    registry.promote("m", "2", to="production", actor="cli:bo")
    registry.rollback("m", actor="cli:cy", reason="latency")
    history = registry.history("m")
    with registry.store.read() as conn:
        entries = entries_for(conn, ["m@1", "m@2"])
    changes = [e for e in entries if e.action == "model.stage_changed"]
    assert len(changes) == len(history) == 7
    for row, entry in zip(history, changes, strict=True):
        details = entry.details_dict()
        assert entry.target == f"m@{row.version}" and entry.actor == row.actor
        assert (details["from"], details["to"], details["actor"], details["reason"]) == (
            row.from_stage,
            row.to_stage,
            row.actor,
            row.reason,
        )
        assert details["evaluation_id"] == row.evaluation_id
    assert [h.evaluation_id for h in history if h.evaluation_id] == [evaluation, evaluation]
    evaluated = [e for e in entries if e.action == "model.evaluated"]
    assert [e.details_dict()["evaluation_id"] for e in evaluated] == [evaluation]


def test_a_store_from_before_stage_history_starts_it_from_the_present(
    settings: Settings,
) -> None:
    from alembic import command

    from sluice.models.tables import model_versions
    from sluice.store import utcnow
    from sluice.store._engine import _make_engine
    from sluice.store.migrate import _config

    engine = _make_engine(settings)
    with engine.begin() as conn:
        config = _config()
        config.attributes["connection"] = conn
        command.upgrade(config, "0005")
        for version, stage in (("1", "retired"), ("2", "production"), ("3", "candidate")):
            conn.execute(
                model_versions.insert().values(
                    name="m",
                    version=version,
                    kind="classifier",
                    sha256="0" * 64,
                    artifact=version.encode(),
                    card={},
                    stage=stage,
                    created_by="cli:old",
                    created_at=utcnow(),
                )
            )
    engine.dispose()
    store = open_store(settings)
    try:
        registry = ModelRegistry(store)
        history = registry.history("m")
        assert [(h.version, h.from_stage, h.to_stage, h.actor) for h in history] == [
            ("1", None, "retired", "cli:old"),
            ("2", None, "production", "cli:old"),
            ("3", None, "candidate", "cli:old"),
        ]
        assert all("migration 0006" in str(h.reason) for h in history)
        assert registry.stage_epoch() == 3
        with pytest.raises(PromotionError, match="no production version of m before m@2"):
            registry.rollback("m", actor="cli:ana")
        _passing(registry, "3", baseline="2")
        registry.promote("m", "3", to="production", actor="cli:ana")
        assert registry.rollback("m", actor="cli:ana").version == "2"
    finally:
        store.dispose()


def test_concurrent_promotions_keep_one_canary(registry: ModelRegistry) -> None:
    from concurrent.futures import ThreadPoolExecutor

    registry.register("m", "classifier", b"1", {})
    versions = [registry.register("m", "classifier", bytes([i]), {}).version for i in range(8)]
    for version in versions:
        _passing(registry, version)
    with ThreadPoolExecutor(len(versions)) as pool:
        list(
            pool.map(
                lambda v: registry.promote("m", v, to="canary", actor=f"cli:{v}"),
                versions,
            )
        )
    stages = [r.stage for r in registry.list("m")]
    assert stages.count("canary") == 1 and stages.count("production") == 1
    assert stages.count("retired") == len(versions) - 1
    # Each promotion after the first retired exactly the canary before it.
    canaries = [h for h in registry.history("m") if h.to_stage == "canary"]
    retirements = [h for h in registry.history("m") if h.to_stage == "retired"]
    assert [h.version for h in canaries[:-1]] == [h.version for h in retirements]
