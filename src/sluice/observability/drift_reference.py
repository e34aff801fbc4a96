"""Drift references: what the monitors compare a window of live items with.

A reference describes the data a model version was trained on (kind ``training``) or a
pinned period of a pipeline (kind ``period``): text-length buckets (quantiles of the
training lengths, in words), k-means clusters of the texts' embeddings from the packaged
encoder, the class distribution, the share of items under the auto threshold (from the
out-of-fold calibration the gate threshold was chosen on), and fallback and escalation
rates (zero for training data: none of it was answered by the gateway).

Where it lives: in its own table (``drift_references``), keyed by model name and version,
not in the model card. The card is the version's registration evidence, written once by
the model plane, which must not know observability's formats (imports point down); a
reference can be fitted again or pinned to a period without touching a registered
version. It is fitted from exactly the training data the card names: the file is read
again and its sha256 checked against the card's ``training_sha256`` before anything is
computed, so a reference fitted later equals one fitted at training time (k-means is
seeded).

Example:
    >>> ref = fit_reference(
    ...     ["a b", "a b c", "a"], ["x", "y", "x"], np.eye(3, dtype=np.float32),
    ...     below_threshold_share=0.1, threshold=0.5, clusters=2,
    ... )
    >>> ref.classes, [round(s, 3) for s in ref.class_shares]
    (['x', 'y'], [0.667, 0.333])
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select

from sluice.config import Settings
from sluice.errors import ConfigError
from sluice.governance import AuditEvent, append
from sluice.observability.drift_tables import drift_references
from sluice.store import Store, new_id, utcnow

__all__ = [
    "DriftReference",
    "find_reference",
    "fit_reference",
    "fit_training_reference",
    "save_reference",
    "text_length",
]


def text_length(text: str) -> int:
    """Words in ``text``: the unit of the length buckets."""
    return len(text.split())


@dataclass(frozen=True)
class DriftReference:
    """What normal looks like for one model version (or one pinned period).

    Attributes:
        length_edges: Upper edges of the length buckets (words); one more bucket above.
        length_shares: Share of reference texts in each length bucket.
        centroids: k-means centroids of the L2-normalized embeddings (k x dimensions).
        cluster_shares: Share of reference texts nearest each centroid.
        classes: The classes, in the order of ``class_shares``.
        class_shares: Share of each class (training labels, or predictions of a period).
        below_threshold_share: Share of items whose confidence is under the threshold.
        threshold: The auto threshold of the version (for the record).
        fallback_rate: Share of answers that needed a fallback endpoint.
        escalation_rate: Share of answers escalated to a higher tier.
        target_precision: The precision the gate was calibrated for.
    """

    kind: str
    model: str
    version: str
    encoder: str
    data_sha256: str
    rows: int
    length_edges: list[float]
    length_shares: list[float]
    centroids: list[list[float]]
    cluster_shares: list[float]
    classes: list[str]
    class_shares: list[float]
    below_threshold_share: float
    threshold: float
    fallback_rate: float = 0.0
    escalation_rate: float = 0.0
    target_precision: float | None = None
    pipeline: str | None = None
    id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def length_bucket(self, words: int) -> int:
        """Index of the length bucket of a text of ``words`` words."""
        return int(np.searchsorted(np.asarray(self.length_edges), words, side="left"))

    def length_bucket_names(self) -> list[str]:
        """Readable bucket names: ``<=5``, ``6-9`` ... ``>40`` (words)."""
        edges = [int(e) for e in self.length_edges]
        if not edges:
            return ["all"]
        names = [f"<={edges[0]}"]
        names += [f"{lo + 1}-{hi}" for lo, hi in itertools.pairwise(edges)]
        return [*names, f">{edges[-1]}"]

    def clusters_of(self, embeddings: npt.NDArray[np.float32]) -> list[int]:
        """Nearest centroid of each embedding (rows are L2-normalized first)."""
        if not self.centroids or len(embeddings) == 0:
            return []
        x = _normalized(embeddings)
        c = np.asarray(self.centroids, dtype=np.float32)
        # |x - c|^2 = |x|^2 + |c|^2 - 2 x.c; |x| = 1, so argmin over |c|^2 - 2 x.c.
        distances = (c * c).sum(axis=1)[None, :] - 2.0 * x @ c.T
        return [int(i) for i in distances.argmin(axis=1)]

    def to_body(self) -> dict[str, Any]:
        """The JSON stored in ``drift_references.body``."""
        body = asdict(self)
        for key in ("id", "kind", "model", "version", "encoder", "data_sha256", "rows"):
            body.pop(key)
        body.pop("pipeline")
        return body

    def summary(self) -> dict[str, Any]:
        """A short JSON-ready description (no centroids)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "model": self.model,
            "version": self.version,
            "pipeline": self.pipeline,
            "encoder": self.encoder,
            "rows": self.rows,
            "length_buckets": len(self.length_shares),
            "clusters": len(self.cluster_shares),
            "classes": len(self.classes),
            "below_threshold_share": self.below_threshold_share,
        }


def _normalized(x: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: npt.NDArray[np.float32] = x / np.maximum(norms, 1e-12)
    return out


def fit_reference(
    texts: Sequence[str],
    labels: Sequence[str],
    embeddings: npt.NDArray[Any],
    *,
    below_threshold_share: float,
    threshold: float,
    kind: str = "training",
    model: str = "",
    version: str = "",
    encoder: str = "",
    data_sha256: str = "",
    length_buckets: int = 10,
    clusters: int = 16,
    seed: int = 0,
    fallback_rate: float = 0.0,
    escalation_rate: float = 0.0,
    target_precision: float | None = None,
    pipeline: str | None = None,
    extra: dict[str, Any] | None = None,
) -> DriftReference:
    """Fit a reference from texts, their classes and their embeddings (pure; no store).

    Args:
        texts: The reference texts.
        labels: Their classes (training labels, or a period's predictions).
        embeddings: Their embeddings, row ``i`` for ``texts[i]``.
        below_threshold_share: Share of reference items under the auto threshold.
        threshold: The auto threshold.
        length_buckets: Quantile buckets of the text length (fewer when lengths repeat).
        clusters: k of the k-means over the embeddings (at most one per text).
        seed: k-means seed.
        kind: ``training`` or ``period``.
        model: Model name the reference belongs to.
        version: Model version.
        encoder: The encoder of ``embeddings``, as ``name@version``.
        data_sha256: Hash of the reference data.
        fallback_rate: Share of reference answers that needed a fallback.
        escalation_rate: Share of reference answers escalated a tier.
        target_precision: The precision the gate was calibrated for.
        pipeline: The pipeline of a period reference.
        extra: More facts to keep with it (a period's bounds).

    Raises:
        ConfigError: No texts, or lengths that differ.
    """
    if not texts or len(texts) != len(labels) or len(texts) != len(embeddings):
        raise ConfigError(
            f"a drift reference needs as many texts, labels and embeddings, and at least "
            f"one: got {len(texts)}, {len(labels)}, {len(embeddings)}"
        )
    from sklearn.cluster import KMeans

    lengths = np.asarray([text_length(t) for t in texts], dtype=np.float64)
    quantiles = np.quantile(lengths, np.arange(1, length_buckets) / length_buckets)
    edges = sorted({float(np.floor(q)) for q in quantiles})
    length_index = np.searchsorted(np.asarray(edges), lengths, side="left")
    length_counts = np.bincount(length_index, minlength=len(edges) + 1)

    x = _normalized(embeddings)
    k = max(1, min(clusters, len(texts)))
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x)
    cluster_counts = np.bincount(km.labels_, minlength=k)

    classes = sorted(set(labels))
    position = {c: i for i, c in enumerate(classes)}
    class_counts = np.bincount([position[c] for c in labels], minlength=len(classes))
    n = float(len(texts))
    return DriftReference(
        kind=kind,
        model=model,
        version=version,
        encoder=encoder,
        data_sha256=data_sha256,
        rows=len(texts),
        length_edges=edges,
        length_shares=[float(c / n) for c in length_counts],
        centroids=[[round(float(v), 6) for v in row] for row in km.cluster_centers_],
        cluster_shares=[float(c / n) for c in cluster_counts],
        classes=classes,
        class_shares=[float(c / n) for c in class_counts],
        below_threshold_share=float(below_threshold_share),
        threshold=float(threshold),
        fallback_rate=float(fallback_rate),
        escalation_rate=float(escalation_rate),
        target_precision=target_precision,
        pipeline=pipeline,
        extra=dict(extra or {}),
    )


def fit_training_reference(
    settings: Settings,
    registry: Any,
    model: str,
    version: str | None = None,
    *,
    data_path: Path | None = None,
    encoder: Any | None = None,
) -> DriftReference:
    """The reference of a registered classifier version, from its own training data.

    Reads the file the card names (or ``data_path``), checks its sha256 against the
    card's ``training_sha256``, embeds the texts with the encoder the version was trained
    on, and takes the share under the threshold from the version's out-of-fold
    calibration (what the gate threshold was chosen on).

    Args:
        settings: Settings (encoder and model cache).
        registry: The :class:`sluice.models.ModelRegistry`.
        model: Model name, e.g. ``support-intent``.
        version: Version (default: production).
        data_path: The training CSV, when it moved since training.
        encoder: An already loaded encoder (default: the packaged one).

    Raises:
        ConfigError: The training data is missing or is not the data the version was
            trained on, or the encoder differs.
    """
    from sluice.models import load_classifier, load_encoder, read_labelled_csv

    record, _head, calibration = load_classifier(registry, model, version)
    card = record.card
    path = data_path or Path(str(card.get("training_data", "")))
    if not path.is_file():
        raise ConfigError(
            f"{model}@{record.version}: its training data {str(path)!r} is not there",
            hint="pass the training CSV with --data",
        )
    data = read_labelled_csv(path)
    if card.get("training_sha256") and data.sha256 != card["training_sha256"]:
        raise ConfigError(
            f"{path} is not the data {model}@{record.version} was trained on (sha256 "
            f"{data.sha256[:12]} != {str(card['training_sha256'])[:12]})",
            hint="pass the exact training CSV with --data",
        )
    encoder = encoder or load_encoder(settings)
    encoder_ref = f"{encoder.name}@{encoder.version}"
    if card.get("encoder") and card["encoder"] != encoder_ref:
        raise ConfigError(
            f"{model}@{record.version} was trained on {card['encoder']}, "
            f"the encoder here is {encoder_ref}"
        )
    gate = card.get("gate", {})
    threshold = float(gate.get("threshold", 0.0))
    below = float((np.asarray(calibration.confidence) < threshold).mean())
    return fit_reference(
        data.texts,
        data.labels,
        encoder.encode(data.texts),
        below_threshold_share=below,
        threshold=threshold,
        kind="training",
        model=model,
        version=record.version,
        encoder=encoder_ref,
        data_sha256=data.sha256,
        length_buckets=settings.drift_length_buckets,
        clusters=settings.drift_embedding_clusters,
        target_precision=gate.get("target_precision"),
    )


def save_reference(store: Store, reference: DriftReference, *, actor: str) -> DriftReference:
    """Store a reference (audited as ``drift.reference_saved``); returns it with its id."""
    ref_id = new_id("dref")
    with store.begin() as conn:
        conn.execute(
            drift_references.insert().values(
                id=ref_id,
                kind=reference.kind,
                model=reference.model,
                version=reference.version,
                pipeline=reference.pipeline,
                encoder=reference.encoder,
                data_sha256=reference.data_sha256,
                rows=reference.rows,
                body=reference.to_body(),
                created_by=actor,
                created_at=utcnow(),
            )
        )
        append(
            conn,
            [
                AuditEvent(
                    actor,
                    "drift.reference_saved",
                    ref_id,
                    {
                        "kind": reference.kind,
                        "model": f"{reference.model}@{reference.version}",
                        "pipeline": reference.pipeline,
                        "data_sha256": reference.data_sha256,
                        "rows": reference.rows,
                    },
                )
            ],
        )
    return _with_id(reference, ref_id)


def _with_id(reference: DriftReference, ref_id: str) -> DriftReference:
    from dataclasses import replace

    return replace(reference, id=ref_id)


def find_reference(
    store: Store, *, model: str, version: str, pipeline: str | None = None
) -> DriftReference | None:
    """The reference a window of ``pipeline`` answered by ``model@version`` is compared with.

    The newest pinned period of ``pipeline`` if there is one, else the newest training
    reference of ``model@version``; None when neither exists.
    """
    queries = []
    if pipeline is not None:
        queries.append(
            select(drift_references).where(
                drift_references.c.kind == "period", drift_references.c.pipeline == pipeline
            )
        )
    queries.append(
        select(drift_references).where(
            drift_references.c.kind == "training",
            drift_references.c.model == model,
            drift_references.c.version == version,
        )
    )
    with store.read() as conn:
        for query in queries:
            row = conn.execute(
                query.order_by(
                    drift_references.c.created_at.desc(), drift_references.c.id.desc()
                ).limit(1)
            ).one_or_none()
            if row is not None:
                return DriftReference(
                    id=row.id,
                    kind=row.kind,
                    model=row.model,
                    version=row.version,
                    pipeline=row.pipeline,
                    encoder=row.encoder,
                    data_sha256=row.data_sha256,
                    rows=row.rows,
                    **row.body,
                )
    return None
