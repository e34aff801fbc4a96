import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.errors import TrainingError
from sluice.models import LinearHead, choose_threshold
from sluice.models.classifier import cross_validated_probabilities, fit_head


def _blobs(n_per_class: int = 20, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centers = np.eye(3, 8, dtype=np.float32) * 3
    x = np.concatenate([c + rng.normal(0, 1, (n_per_class, 8)) for c in centers])
    y = [label for label in "abc" for _ in range(n_per_class)]
    return x.astype(np.float32), y


def test_head_round_trips_through_bytes_without_pickle() -> None:
    x, y = _blobs()
    head = fit_head(x, y, c=1.0)
    copy = LinearHead.from_bytes(head.to_bytes())
    np.testing.assert_allclose(copy.probabilities(x), head.probabilities(x), rtol=1e-6)
    assert copy.labels == ["a", "b", "c"]
    assert np.allclose(head.probabilities(x).sum(axis=1), 1.0)


def test_predictions_rank_alternatives() -> None:
    x, y = _blobs()
    (pred,) = fit_head(x, y).predict(x[:1], top=3)
    assert pred.label == "a"
    assert [label for label, _ in pred.alternatives] != [] and pred.confidence >= max(
        p for _, p in pred.alternatives
    )


def test_out_of_fold_probabilities_cover_every_row() -> None:
    x, y = _blobs()
    oof, classes = cross_validated_probabilities(x, y, folds=4)
    assert classes == ["a", "b", "c"] and oof.shape == (60, 3)
    assert np.allclose(oof.sum(axis=1), 1.0, atol=1e-5)


def test_training_refuses_unusable_labels() -> None:
    x, _ = _blobs()
    with pytest.raises(TrainingError, match="at least two labels"):
        fit_head(x, ["a"] * len(x))
    with pytest.raises(TrainingError, match="single example"):
        fit_head(x[:3], ["a", "a", "b"])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 1, allow_nan=False), st.booleans()), min_size=1, max_size=60),
    st.sampled_from([0.5, 0.8, 0.9, 0.99]),
)
def test_threshold_meets_the_target_and_is_the_lowest_that_does(
    pairs: list[tuple[float, bool]], target: float
) -> None:
    conf = np.array([p for p, _ in pairs], dtype=np.float32)
    correct = np.array([c for _, c in pairs])
    t = choose_threshold(conf, correct, target)
    accepted = conf >= np.float32(t)
    if accepted.any():
        assert correct[accepted].mean() >= target
    # No lower candidate threshold would also meet the target.
    for lower in sorted(set(conf.tolist())):
        if lower < t and (conf >= lower).any():
            assert correct[conf >= lower].mean() < target
