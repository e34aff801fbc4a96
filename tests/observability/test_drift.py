"""Drift monitors: PSI on known distributions; each monitor fires on a shifted stream and
stays quiet on unshifted windows, built from the shipped support sample (no ../shared).

The reference is fitted on the sample's training messages of 14 of its 18 intents; the
classifier (the real encoder and a logistic head) is trained on the same. Shifted
streams: messages of the 4 held-out intents, a class mix narrowed to 3 intents, messages
twice as long, answers that needed fallbacks or escalations. Unshifted: windows drawn
from the test messages of the 14 known intents.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sluice.observability import (
    MonitorThresholds,
    Window,
    evaluate_window,
    fit_reference,
    precision_monitor,
    psi,
)
from sluice.observability.drift import null_psi_quantile, shares

HELD_OUT = ("account_locked", "change_address", "password_reset", "update_account_details")
WINDOW = 100
UNSHIFTED_WINDOWS = 30
LIMITS = MonitorThresholds(min_items=50)


def test_psi_of_known_distributions() -> None:
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    # sum((a - e) ln(a / e)) by hand: 0.1374 + 0.0112 + 0.0091 + 0.0705
    assert psi([0.25] * 4, [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.2282, abs=1e-4)
    assert psi([0.1, 0.2, 0.3, 0.4], [0.25] * 4) == pytest.approx(0.2282, abs=1e-4)
    # An empty bucket is floored, not infinite; a bigger move gives a bigger PSI.
    assert 0 < psi([0.5, 0.5], [1.0, 0.0]) < 10
    assert psi([0.5, 0.5], [0.9, 0.1]) > psi([0.5, 0.5], [0.6, 0.4])
    with pytest.raises(ValueError, match="equal bucket counts"):
        psi([0.5, 0.5], [1.0])
    assert shares([0, 0, 2], 3).tolist() == pytest.approx([2 / 3, 0, 1 / 3])


def test_the_null_quantile_grows_with_buckets_and_shrinks_with_window_size() -> None:
    flat = lambda k: [1 / k] * k  # noqa: E731
    assert null_psi_quantile(flat(77), 200, 0.001) > 0.2  # why PSI alone false-alarms
    assert null_psi_quantile(flat(77), 200, 0.001) > null_psi_quantile(flat(10), 200, 0.001)
    assert null_psi_quantile(flat(10), 2000, 0.001) < null_psi_quantile(flat(10), 200, 0.001)
    # Its false-alarm rate on windows really drawn from the reference is about alpha.
    rng = np.random.default_rng(7)
    p = np.asarray(flat(10))
    q = null_psi_quantile(p, 200, 0.05)
    fired = [psi(p, rng.multinomial(200, p) / 200) > q for _ in range(2000)]
    assert 0.03 < np.mean(fired) < 0.07


@dataclass
class Sample:
    texts: list[str]
    labels: list[str]
    vectors: np.ndarray


@dataclass
class World:
    reference: Any
    train: Sample
    known_test: Sample
    held_out: Sample
    head: Any
    threshold: float


def _read(path: Path) -> tuple[list[str], list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [r["text"] for r in rows], [r["category"] for r in rows]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> World:
    from helpers import make_settings
    from sluice.models import choose_threshold, load_encoder
    from sluice.models.classifier import cross_validated_probabilities, fit_head
    from sluice.pipelines.support_triage import sample_path

    settings = make_settings(
        tmp_path_factory.mktemp("drift"), None, model_cache, encoder_processes=0
    )
    encoder = load_encoder(settings)
    train_t, train_l = _read(sample_path("train.csv"))
    test_t, test_l = _read(sample_path("test.csv"))

    def sample(texts: list[str], labels: list[str], keep: Any) -> Sample:
        pairs = [(t, label) for t, label in zip(texts, labels, strict=True) if keep(label)]
        ts, ls = [p[0] for p in pairs], [p[1] for p in pairs]
        return Sample(ts, ls, encoder.encode(ts))

    train = sample(train_t, train_l, lambda label: label not in HELD_OUT)
    oof, classes = cross_validated_probabilities(train.vectors, train.labels, c=20.0, folds=5)
    confidence = oof.max(axis=1)
    correct = np.array(
        [classes[i] == g for i, g in zip(oof.argmax(axis=1), train.labels, strict=True)]
    )
    threshold = choose_threshold(confidence, correct, 0.97)
    reference = fit_reference(
        train.texts,
        train.labels,
        train.vectors,
        below_threshold_share=float((confidence < threshold).mean()),
        threshold=threshold,
        clusters=8,
        length_buckets=6,
    )
    return World(
        reference=reference,
        train=train,
        known_test=sample(test_t, test_l, lambda label: label not in HELD_OUT),
        held_out=sample(train_t + test_t, train_l + test_l, lambda label: label in HELD_OUT),
        head=fit_head(train.vectors, train.labels, c=20.0),
        threshold=threshold,
    )


def _window(
    w: World,
    texts: list[str],
    vectors: np.ndarray,
    *,
    fallbacks: list[bool] | None = None,
    escalations: list[bool] | None = None,
) -> Window:
    predictions = w.head.predict(vectors)
    return Window(
        lengths=[len(t.split()) for t in texts],
        clusters=w.reference.clusters_of(vectors),
        labels=[p.label for p in predictions],
        below_threshold=[p.confidence < w.threshold for p in predictions],
        fallbacks=fallbacks or [False] * len(texts),
        escalations=escalations or [False] * len(texts),
    )


def _draw(s: Sample, rng: np.random.Generator, n: int = WINDOW) -> tuple[list[str], np.ndarray]:
    idx = rng.integers(0, len(s.texts), n)
    return [s.texts[i] for i in idx], s.vectors[idx]


def _fired(w: World, window: Window) -> set[str]:
    return {r.monitor for r in evaluate_window(w.reference, window, LIMITS) if r.fired}


def test_unshifted_windows_stay_quiet(world: World) -> None:
    rng = np.random.default_rng(11)
    alarms: dict[str, int] = {}
    for _ in range(UNSHIFTED_WINDOWS):
        texts, vectors = _draw(world.known_test, rng)
        for monitor in _fired(world, _window(world, texts, vectors)):
            alarms[monitor] = alarms.get(monitor, 0) + 1
    rate = {m: n / UNSHIFTED_WINDOWS for m, n in alarms.items()}
    print(f"false-alarm rate over {UNSHIFTED_WINDOWS} unshifted windows: {rate or 'none'}")
    # alpha is 0.001 per window: more than one alarm in 30 windows is not chance.
    assert all(n <= 1 for n in alarms.values()), rate


def test_held_out_intents_fire_embedding_prediction_and_confidence(world: World) -> None:
    texts, vectors = _draw(world.held_out, np.random.default_rng(3))
    fired = _fired(world, _window(world, texts, vectors))
    assert {"input_embedding", "prediction", "confidence"} <= fired, fired


def test_a_narrowed_class_mix_fires_prediction_only_on_distribution(world: World) -> None:
    few = {"double_charge", "refund_status", "cancel_order"}
    keep = [i for i, label in enumerate(world.known_test.labels) if label in few]
    rng = np.random.default_rng(5)
    idx = rng.choice(keep, WINDOW)
    texts = [world.known_test.texts[i] for i in idx]
    results = evaluate_window(
        world.reference, _window(world, texts, world.known_test.vectors[idx]), LIMITS
    )
    fired = {r.monitor for r in results if r.fired}
    assert "prediction" in fired, results
    assert "fallback_rate" not in fired


def test_longer_messages_fire_input_length(world: World) -> None:
    rng = np.random.default_rng(9)
    texts, vectors = _draw(world.known_test, rng)
    others, _ = _draw(world.known_test, rng)
    longer = [f"{a} {b} {a}" for a, b in zip(texts, others, strict=True)]
    assert "input_length" in _fired(world, _window(world, longer, vectors))
    assert "input_length" not in _fired(world, _window(world, texts, vectors))


def test_rising_fallbacks_and_escalations_fire(world: World) -> None:
    rng = np.random.default_rng(13)
    texts, vectors = _draw(world.known_test, rng)
    flags = [bool(x) for x in rng.random(WINDOW) < 0.2]
    fired = _fired(world, _window(world, texts, vectors, fallbacks=flags))
    assert "fallback_rate" in fired
    assert "escalation_rate" not in fired
    fired = _fired(world, _window(world, texts, vectors, escalations=flags))
    assert "escalation_rate" in fired
    rare = [i == 0 for i in range(WINDOW)]  # one fallback in 100: within noise of 0.05
    assert "fallback_rate" not in _fired(world, _window(world, texts, vectors, fallbacks=rare))


def test_too_few_items_are_skipped_not_judged(world: World) -> None:
    texts, vectors = _draw(world.held_out, np.random.default_rng(1), n=10)
    results = evaluate_window(world.reference, _window(world, texts, vectors), LIMITS)
    assert all(not r.fired and r.skipped for r in results)


def test_precision_fires_only_when_audits_show_it_under_target() -> None:
    limits = MonitorThresholds(precision_min_audited=30)
    assert precision_monitor(0.85, 0.93, 60, 0.99, limits).fired
    assert not precision_monitor(0.98, 0.999, 60, 0.99, limits).fired  # within its interval
    skipped = precision_monitor(0.5, 0.7, 10, 0.99, limits)
    assert not skipped.fired
    assert skipped.skipped


def test_a_reference_survives_storage(sqlite_settings: Any, world: World) -> None:
    from sluice.observability import find_reference, save_reference
    from sluice.store import open_store

    store = open_store(sqlite_settings)
    try:
        ref = world.reference
        saved = save_reference(store, fit_reference_copy(ref, model="m", version="1"), actor="test")
        again = find_reference(store, model="m", version="1")
        assert again is not None
        assert again.id == saved.id
        assert again.class_shares == pytest.approx(ref.class_shares)
        assert again.clusters_of(world.train.vectors[:20]) == ref.clusters_of(
            world.train.vectors[:20]
        )
        assert find_reference(store, model="m", version="2") is None
    finally:
        store.dispose()


def fit_reference_copy(ref: Any, **changes: Any) -> Any:
    from dataclasses import replace

    return replace(ref, **changes)
