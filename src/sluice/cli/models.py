"""Commands for the model registry: train and list."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sluice.cli._common import (
    JsonOption,
    console,
    emit_json,
    handle_errors,
    local_principal,
    progress_bar,
    runtime,
)

__all__ = ["app"]

app = typer.Typer(
    help="Versioned models: train, retrain from reviewers' corrections, list.",
    no_args_is_help=True,
)


@app.command("train")
@handle_errors
def train(
    name: Annotated[str, typer.Option(help="Model name.")] = "support-intent",
    data: Annotated[
        Path | None,
        typer.Option(help="CSV with columns text,category (default: the shipped support sample)."),
    ] = None,
    c: Annotated[
        float, typer.Option("--c", min=1e-4, help="Inverse regularization strength.")
    ] = 20.0,
    target_precision: Annotated[
        float | None,
        typer.Option(min=0.5, max=0.9999, help="Precision the gate threshold is calibrated for."),
    ] = None,
    promote: Annotated[
        bool, typer.Option(help="Make it the production version (the first version always is).")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(help="Train even if an identical version (same data and parameters) exists."),
    ] = False,
    as_json: bool = JsonOption,
) -> None:
    """Train an intent classifier on frozen sentence embeddings and register it.

    The gate threshold is calibrated on out-of-fold predictions over the training data to
    reach the target precision on auto-handled items (default SLUICE_TARGET_PRECISION).
    """
    from sluice.models import read_labelled_csv, train_classifier
    from sluice.pipelines.support_triage import sample_path

    extra = {"target_precision": target_precision} if target_precision else {}
    with runtime(**extra) as rt, progress_bar(not as_json) as progress:
        record = train_classifier(
            rt.settings,
            rt.models,
            name,
            read_labelled_csv(data or sample_path("train.csv")),
            c=c,
            promote=promote or None,
            force=force,
            progress=progress,
        )
    if as_json:
        emit_json(record.to_dict())
        return
    gate, metrics = record.card["gate"], record.card["metrics"]
    console.print(
        f"{record.name}@{record.version} ({record.stage}): cross-validated accuracy "
        f"{metrics['cv_accuracy']:.1%}, macro-F1 {metrics['cv_macro_f1']:.3f}; gate "
        f"threshold {gate['threshold']:.3f} automates {gate['cv_automation']:.1%} at "
        f"{gate['target_precision']:.0%} precision"
    )


@app.command("list")
@handle_errors
def list_models(
    name: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    as_json: bool = JsonOption,
) -> None:
    """List registered model versions, newest first."""
    with runtime() as rt:
        records = rt.models.list(name)
    if as_json:
        emit_json([r.to_dict() for r in records])
        return
    table = Table("model", "stage", "kind", "trained on", "cv accuracy", "sha256", "created")
    for r in records:
        table.add_row(
            f"{r.name}@{r.version}",
            r.stage,
            r.kind,
            f"{r.card.get('training_rows', '?')} rows",
            f"{r.card.get('metrics', {}).get('cv_accuracy', 0):.1%}",
            r.sha256[:12],
            f"{r.created_at:%Y-%m-%d %H:%M}",
        )
    console.print(table)


@app.command("retrain")
@handle_errors
def retrain(
    name: Annotated[str, typer.Argument(help="The model (task) to retrain.")] = "support-intent",
    data: Annotated[
        Path | None,
        typer.Option(help="Original training CSV text,category (default: the shipped sample)."),
    ] = None,
    holdout: Annotated[
        Path | None,
        typer.Option(
            help="Held-out CSV to evaluate both versions on (default: the sample's test set)."
        ),
    ] = None,
    as_json: bool = JsonOption,
) -> None:
    """Train a candidate on the training data plus every reviewer's labelled decision.

    Both the candidate and the production version are evaluated on the held-out set;
    the candidate is registered with that evaluation and is never promoted by this
    command. Corrections whose text is in the held-out set are left out of training.
    """
    from sluice.execution import get_item
    from sluice.models import Correction, read_labelled_csv, retrain_with_corrections
    from sluice.pipelines.support_triage import MODEL_NAME, message_text, sample_path
    from sluice.review import labelled_decisions

    if name != MODEL_NAME:
        from sluice.errors import ConfigError

        raise ConfigError(
            f"no pipeline feeds corrections to {name!r}",
            hint=f"retraining from corrections is wired for {MODEL_NAME!r} (support-triage)",
        )
    with runtime() as rt:
        corrections = [
            Correction(
                message_text(get_item(rt.store, d["item_id"])["event"]["data"]), d["label"], d
            )
            for d in labelled_decisions(rt.store, "support-triage")
        ]
        result = retrain_with_corrections(
            rt.settings,
            rt.models,
            name,
            read_labelled_csv(data or sample_path("train.csv")),
            corrections,
            read_labelled_csv(holdout or sample_path("test.csv")),
            created_by=local_principal().actor,
        )
    if as_json:
        emit_json(result.to_dict())
        return
    table = Table("held-out figure", "production", "candidate")
    prod, cand = result.production_evaluation or {}, result.candidate_evaluation
    for key, label in (
        ("accuracy", "accuracy"),
        ("macro_f1", "macro-F1"),
        ("automation", "automation at the gate"),
        ("auto_precision", "precision of auto-handled"),
    ):
        table.add_row(label, _fmt(prod.get(key)), _fmt(cand.get(key)))
    console.print(
        f"candidate {result.candidate.name}@{result.candidate.version} "
        f"({result.candidate.stage}) from {result.corrections_used} correction(s)"
        + (
            f", {result.corrections_left_out} left out (in the held-out set)"
            if result.corrections_left_out
            else ""
        )
    )
    console.print(table)
    console.print("It is not promoted: compare, replay (`sluice replay --model`), then decide.")


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "-"
