"""Prompt-injection detection: precision/recall on a labelled set, over-defense, false alarms.

    python -m bench.injection [--data DIR] [--benign PATH ...] [--json]

DIR holds ``prompt_injection_dev.jsonl`` (``text``, ``label`` 1/0, ``origin``; default
``$SLUICE_DATA_DIR/prompt-injection-dev``, see its PROVENANCE.md). The benchmark:

1. **cross-validated detection** on DIR: stratified *group* k-fold (``--folds``, default
   5, shuffled with ``--seed``), the group of a record being its text with case and
   whitespace ignored, so a duplicate never sits on both sides. In each fold the
   classifier is fitted on the other folds, and its threshold is chosen on them too:
   the lowest out-of-fold score (an inner grouped k-fold over the training folds) at
   which flagged items reach ``--target-precision``; the scored fold is never seen.
   Precision, recall and F1 of the heuristics alone, the classifier alone and the two
   combined (flag if either flags), pooled over the folds, and the accuracy per origin
   (NotInject: over-defense; WildGuard: benign; BIPIA: indirect attacks; PINT, from
   ``valid.json``: a small mix);
2. **false alarms on benign customer messages**: the shipped support-ticket samples
   (``support_triage/sample/*.csv``) and every ``--benign`` CSV (a ``text`` column) or
   folder of CSVs (default: ``$SLUICE_DATA_DIR/banking77`` when it exists), scored by
   the classifier trained on all of DIR (threshold chosen the same way);
3. **the default detector**: trained by ``train_injection_detector`` on what the demo
   trains it on (the packaged sample plus the support sample's ``train.csv`` as ordinary
   traffic; no benchmark data), registered in a scratch store and run through the model
   gateway exactly as an application would; scored on DIR (disjoint from its training
   data) and on the benign messages it never saw (``test.csv``, ``--benign``).
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import Timer, data_dir, emit, machine, parser, write_section

ROOT = Path(__file__).resolve().parent.parent
SUPPORT_SAMPLE = ROOT / "src" / "sluice" / "pipelines" / "support_triage" / "sample"
#: The InjecGuard figures of PROVENANCE.md (its final checkpoint, logs/log.out).
PUBLISHED = {"NotInject": 0.844, "WildGuard": 0.788, "BIPIA": 0.723}


def _args() -> Any:
    p = parser(__doc__.split("\n\n")[0], "prompt-injection-dev")
    p.add_argument(
        "--benign",
        type=Path,
        action="append",
        default=None,
        help="CSV with a `text` column, or a folder of them, of benign messages "
        "(repeatable; default: $SLUICE_DATA_DIR/banking77 if present)",
    )
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fold split")
    p.add_argument(
        "--target-precision",
        type=float,
        default=0.9,
        help="precision the classifier threshold is chosen for on training folds",
    )
    return p.parse_args()


def _records(folder: Path) -> list[dict[str, Any]]:
    from sluice.models.injection_training import read_injection_jsonl

    path = folder / "prompt_injection_dev.jsonl"
    if not path.is_file():
        sys.exit(f"error: no prompt_injection_dev.jsonl in {folder}")
    kept = set(read_injection_jsonl(path).texts)  # validates and drops exact duplicates
    out, seen = [], set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row["text"].strip() in kept and row["text"].strip() not in seen:
                seen.add(row["text"].strip())
                origin = row.get("origin") or "?"
                out.append(
                    {
                        "text": row["text"].strip(),
                        "label": int(row["label"]),
                        "origin": "PINT" if origin.startswith("PINT") else origin,
                    }
                )
    return out


def _benign_sets(args: Any) -> dict[str, list[str]]:
    from sluice.config import Settings

    # Separately: the shipped detector is trained with train.csv as ordinary traffic, so
    # only test.csv measures its false alarms on unseen support messages.
    sets = {
        "support_train": _csv_texts([SUPPORT_SAMPLE / "train.csv"]),
        "support_test": _csv_texts([SUPPORT_SAMPLE / "test.csv"]),
    }
    paths = args.benign
    if paths is None:
        banking = Settings().data_dir / "banking77"
        paths = [banking] if banking.is_dir() else []
    for path in paths:
        files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
        if not files or not all(f.is_file() for f in files):
            sys.exit(f"error: no CSV file at {path}")
        sets[path.stem] = _csv_texts(files)
    return sets


def _csv_texts(files: Sequence[Path]) -> list[str]:
    texts: list[str] = []
    for f in files:
        with f.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if "text" not in (reader.fieldnames or []):
                sys.exit(f"error: {f} has no `text` column")
            texts += [row["text"].strip() for row in reader if (row["text"] or "").strip()]
    return list(dict.fromkeys(texts))


class _CachedEmbedder:
    """Embeds each distinct text once for the whole run (folds reuse the vectors)."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self.ref = f"{encoder.name}@{encoder.version}"
        self.vectors: dict[str, np.ndarray] = {}

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, str, list[Any]]:
        missing = list(dict.fromkeys(t for t in texts if t not in self.vectors))
        if missing:
            for text, row in zip(missing, self.encoder.encode(missing), strict=True):
                self.vectors[text] = row
        return np.stack([self.vectors[t] for t in texts]), self.ref, []


def _prf(flags: np.ndarray, gold: np.ndarray) -> dict[str, Any]:
    tp = int((flags & gold).sum())
    fp = int((flags & ~gold).sum())
    fn = int((~flags & gold).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision is not None and recall is not None and precision + recall
        else None
    )
    return {
        "precision": None if precision is None else round(precision, 4),
        "recall": None if recall is None else round(recall, 4),
        "f1": None if f1 is None else round(f1, 4),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": int((~flags & ~gold).sum()),
    }


def _per_origin(flags: np.ndarray, gold: np.ndarray, origins: list[str]) -> dict[str, Any]:
    out = {}
    for origin in sorted(set(origins)):
        idx = np.array([o == origin for o in origins])
        out[origin] = {
            "n": int(idx.sum()),
            "accuracy": round(float((flags[idx] == gold[idx]).mean()), 4),
        }
    return out


def _methods(verdicts: list[Any]) -> dict[str, np.ndarray]:
    rules = np.array([bool(v.rules) for v in verdicts])
    model = np.array([v.score is not None and v.score >= v.threshold for v in verdicts])
    return {"heuristics": rules, "classifier": model, "combined": rules | model}


def _scored(verdicts: list[Any], gold: np.ndarray, origins: list[str]) -> dict[str, Any]:
    return {
        name: _prf(flags, gold) | {"per_origin": _per_origin(flags, gold, origins)}
        for name, flags in _methods(verdicts).items()
    }


def _false_alarms(detector: Any, sets: dict[str, list[str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, texts in sets.items():
        verdicts = detector.check_many(texts)
        fired = Counter(rule for v in verdicts for rule in v.rules)
        out[name] = {"n": len(texts)} | {
            f"{m}_fpr": round(float(flags.mean()), 4) for m, flags in _methods(verdicts).items()
        }
        out[name]["rules_fired"] = dict(fired.most_common())
    return out


def _train(
    embed: _CachedEmbedder, texts: list[str], labels: list[str], args: Any, groups: list[str]
) -> tuple[Any, dict[str, Any]]:
    from sluice.models.injection_training import (
        INJECTION_LABEL,
        detector_gate,
        fit_injection_head,
        oof_injection_scores,
    )

    vectors, _, _ = embed(texts)
    scores = oof_injection_scores(vectors, labels, folds=args.folds, seed=args.seed, groups=groups)
    gold = np.array([label == INJECTION_LABEL for label in labels])
    gate = detector_gate(scores, gold, args.target_precision)
    return fit_injection_head(vectors, labels), gate


def _cross_validate(
    records: list[dict[str, Any]], embed: _CachedEmbedder, args: Any
) -> dict[str, Any]:
    from sklearn.model_selection import StratifiedGroupKFold

    from sluice.models.injection import InjectionDetector
    from sluice.models.injection_training import BENIGN_LABEL, INJECTION_LABEL, dedupe_key

    texts = [r["text"] for r in records]
    labels = [INJECTION_LABEL if r["label"] else BENIGN_LABEL for r in records]
    gold = np.array([bool(r["label"]) for r in records])
    groups = [dedupe_key(t) for t in texts]
    verdicts: list[Any] = [None] * len(records)
    thresholds = []
    splitter = StratifiedGroupKFold(args.folds, shuffle=True, random_state=args.seed)
    for train_idx, test_idx in splitter.split(texts, gold, groups=groups):
        head, gate = _train(
            embed,
            [texts[i] for i in train_idx],
            [labels[i] for i in train_idx],
            args,
            [groups[i] for i in train_idx],
        )
        thresholds.append(round(gate["threshold"], 4))
        detector = InjectionDetector(
            head, embed=embed, threshold=gate["threshold"], model_ref="cv-fold"
        )
        for i, verdict in zip(
            test_idx, detector.check_many([texts[i] for i in test_idx]), strict=True
        ):
            verdicts[i] = verdict
    out = _scored(verdicts, gold, [r["origin"] for r in records])
    out["fold_thresholds"] = thresholds
    return out


def _default_detector(
    records: list[dict[str, Any]], benign: dict[str, list[str]], tmp: Path, args: Any
) -> dict[str, Any]:
    from sluice.config import Settings
    from sluice.models import Gateway
    from sluice.models.injection import InjectionDetector
    from sluice.models.injection_training import train_injection_detector
    from sluice.pipelines.support_triage.demo import injection_training_data
    from sluice.runtime import Runtime

    settings = Settings(home=tmp / "home", model_cache=Settings().models_dir)
    with Runtime(settings) as rt:
        # What the demo ships: the packaged sample plus train.csv as ordinary traffic.
        record = train_injection_detector(
            rt.settings, rt.models, injection_training_data(),
            target_precision=args.target_precision,
        )  # fmt: skip
        gateway = Gateway(rt.settings, rt.store, registry=rt.models)
        try:
            detector = InjectionDetector.from_registry(gateway)
            gold = np.array([bool(r["label"]) for r in records])
            with Timer() as t:
                verdicts = detector.check_many([r["text"] for r in records])
            out: dict[str, Any] = {
                "model": detector.model_ref,
                "training_rows": record.card["training_rows"],
                "threshold": round(float(detector.threshold or 0), 4),
                "training_cv": record.card["evaluation"]["detector"],
                "dev": _scored(verdicts, gold, [r["origin"] for r in records]),
                "benign": _false_alarms(
                    detector, {k: v for k, v in benign.items() if k != "support_train"}
                ),
                "dev_seconds": round(t.seconds, 1),
            }
        finally:
            gateway.close()
    return out


def main() -> None:
    args = _args()
    folder = data_dir(args.data, "prompt-injection-dev")
    records = _records(folder)
    benign = _benign_sets(args)
    result: dict[str, Any] = {
        "benchmark": "injection",
        "data": str(folder),
        "records": len(records),
        "attacks": sum(r["label"] for r in records),
        "by_origin": dict(Counter(r["origin"] for r in records)),
        "benign_sets": {k: len(v) for k, v in benign.items()},
        "folds": args.folds,
        "seed": args.seed,
        "target_precision": args.target_precision,
        "machine": machine(),
    }
    from sluice.config import Settings
    from sluice.models import load_encoder
    from sluice.models.injection import InjectionDetector
    from sluice.models.injection_training import BENIGN_LABEL, INJECTION_LABEL, dedupe_key

    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp:
        encoder = load_encoder(Settings(home=Path(tmp) / "enc", model_cache=Settings().models_dir))
        embed = _CachedEmbedder(encoder)
        with Timer() as t:
            result["cross_validated"] = _cross_validate(records, embed, args)
        result["cv_seconds"] = round(t.seconds, 1)
        # The classifier trained on all of DIR, for the false alarms on benign messages.
        texts = [r["text"] for r in records]
        head, gate = _train(
            embed,
            texts,
            [INJECTION_LABEL if r["label"] else BENIGN_LABEL for r in records],
            args,
            [dedupe_key(x) for x in texts],
        )
        full = InjectionDetector(head, embed=embed, threshold=gate["threshold"], model_ref="dev")
        result["dev_trained"] = {"gate": gate, "benign": _false_alarms(full, benign)}
        result["default_detector"] = _default_detector(records, benign, Path(tmp), args)
    result["load_1min_at_end"] = machine()["load_1min_at_start"]
    _report(result, args)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _report(result: dict[str, Any], args: Any) -> None:
    cv = result["cross_validated"]
    rows: list[tuple[str, str]] = [
        (
            "records (attacks / benign)",
            f"{result['records']} ({result['attacks']} / {result['records'] - result['attacks']})",
        ),
    ]
    for method in ("heuristics", "classifier", "combined"):
        m = cv[method]
        rows.append(
            (
                f"dev CV, {method}: precision / recall / F1",
                f"{_pct(m['precision'])} / {_pct(m['recall'])} / {_pct(m['f1'])}",
            )
        )
    for origin, published in (*PUBLISHED.items(), ("PINT", None)):
        got = cv["combined"]["per_origin"].get(origin)
        if got is None:
            continue
        cite = f" (InjecGuard: {_pct(published)})" if published is not None else ""
        per_method = " / ".join(
            _pct(cv[m]["per_origin"][origin]["accuracy"])
            for m in ("heuristics", "classifier", "combined")
        )
        rows.append(
            (f"dev CV accuracy on {origin} (n={got['n']}), heur. / clf / comb.", per_method + cite)
        )
    rows.append(("CV fold thresholds", ", ".join(f"{x:.3f}" for x in cv["fold_thresholds"])))
    for name, fa in result["dev_trained"]["benign"].items():
        rows.append(
            (
                f"false alarms on {name} (n={fa['n']}), heur. / clf / comb. (dev-trained)",
                f"{_pct(fa['heuristics_fpr'])} / {_pct(fa['classifier_fpr'])} / "
                f"{_pct(fa['combined_fpr'])}",
            )
        )
    d = result["default_detector"]
    for method in ("classifier", "combined"):
        m = d["dev"][method]
        rows.append(
            (
                f"default detector ({d['model']}), {method} on dev: P / R / F1",
                f"{_pct(m['precision'])} / {_pct(m['recall'])} / {_pct(m['f1'])}",
            )
        )
    rows.append(
        (
            "default detector, combined accuracy NotInject / WildGuard / BIPIA",
            " / ".join(
                _pct(d["dev"]["combined"]["per_origin"].get(o, {}).get("accuracy"))
                for o in ("NotInject", "WildGuard", "BIPIA")
            ),
        )
    )
    for name, fa in d["benign"].items():
        rows.append(
            (
                f"default detector, false alarms on {name}: clf / comb.",
                f"{_pct(fa['classifier_fpr'])} / {_pct(fa['combined_fpr'])}",
            )
        )
    emit(result, args.json, rows)
    if not args.no_docs:
        write_section(
            "injection",
            "Prompt-injection detection (heuristics + classifier)",
            rows,
            _NOTES.format(
                folds=result["folds"],
                seed=result["seed"],
                target=result["target_precision"],
                default_threshold=d["threshold"],
            ),
            result,
        )


_NOTES = """
How it was measured: `bench/injection.py` (module docstring). Cross-validation is a
stratified group {folds}-fold split (seed {seed}; a group is a text with case and
whitespace ignored, so copies never straddle a split). Each fold's classifier and its
threshold come from the other folds only: the threshold is the lowest inner
out-of-fold score at which flagged items reach {target} precision. "Heuristics" are
the rules of `sluice.governance.injection_rules` (no training); "combined" flags when
either flags. Accuracy per origin is the share of records labelled right (all NotInject
and WildGuard records are benign, all BIPIA ones attacks). False alarms are the share
of benign customer messages flagged. The default detector is what `train_injection_detector`
is trained on in the demo (`injection_training_data()`: the packaged sample, written
for Sluice, plus the support sample's train.csv messages as ordinary traffic; no
benchmark data), run through the model gateway; its threshold ({default_threshold}) was
chosen on that data. Its false alarms are measured on test.csv, which it never saw.

Caveats: the heuristics were written while looking at this dev half (and the sample),
so their dev figures are optimistic; the held-out half, not read here, is the fair
test. The PINT records are 24. The InjecGuard figures are from its paper's repository
(final checkpoint, `logs/log.out`), measured on the full sets, not on this dev half.
"""


if __name__ == "__main__":
    main()
