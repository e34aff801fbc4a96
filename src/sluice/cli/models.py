"""Commands for the model registry: train, list, show, evaluate, promote, roll back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

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
    help=(
        "Versioned models: train, retrain from reviewers' corrections, list, show; "
        "evaluate, promote (canary, production), retire and roll back."
    ),
    no_args_is_help=True,
)

_STAGE_STYLE = {
    "production": "bold green",
    "canary": "yellow",
    "candidate": "",
    "retired": "dim",
}
_SERVING = ("production", "canary")


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
    """List registered model versions, newest first.

    The stage says which versions serve: the production version of each name and, when
    one is set, its canary (which takes the gateway's canary share of calls). Catalogued
    models (served, as the models config declares them) show their endpoint.
    """
    with runtime() as rt:
        records = rt.models.list(name)
    if as_json:
        emit_json([r.to_dict() for r in records])
        return
    table = Table("model", "stage", "kind")
    table.add_column("source", overflow="fold")  # a long endpoint wraps, whole
    for column in ("cv accuracy", "sha256", "created"):
        table.add_column(column)
    for r in records:
        metrics = r.card.get("metrics")
        table.add_row(
            f"{r.name}@{r.version}",
            f"[{_STAGE_STYLE[r.stage]}]{r.stage}[/]" if _STAGE_STYLE.get(r.stage) else r.stage,
            r.kind,
            r.endpoint or f"trained on {r.card.get('training_rows', '?')} rows",
            _pct(metrics.get("cv_accuracy")) if isinstance(metrics, dict) else "-",
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
    the candidate is registered with that evaluation, which is also recorded as its
    promotion evaluation (the gate of `sluice models evaluate`). It is never promoted by
    this command. Corrections whose text is in the held-out set are left out of training.
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
    if result.evaluation is not None:
        _print_gate(result.evaluation)
    console.print(
        "It is not promoted: compare, replay (`sluice replay --model`), then decide with "
        f"`sluice models promote {name} {result.candidate.version} [--to canary]`."
    )


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "-"


def _pct(value: object) -> str:
    return f"{value:.1%}" if isinstance(value, float) else "-"


@app.command("show")
@handle_errors
def show(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[
        str | None, typer.Argument(help="Version (default: the production version).")
    ] = None,
    as_json: bool = JsonOption,
) -> None:
    """Show a version: its record, card, stage history and evaluations.

    Without VERSION it shows the production version, and the stage history of every
    version of NAME (what a rollback reads); with VERSION, that version's history.
    """
    with runtime() as rt:
        record = rt.models.get(name, version)
        history = rt.models.history(name)
        evaluations = rt.models.evaluations(name, record.version)
        serving = {r.stage: r.version for r in rt.models.list(name) if r.stage in _SERVING}
    if version is not None:
        history = [h for h in history if h.version == version]
    if as_json:
        emit_json(
            {
                "model": record.to_dict(),
                "serving": {stage: serving.get(stage) for stage in _SERVING},
                "history": [h.to_dict() for h in history],
                "evaluations": [e.to_dict() for e in evaluations],
            }
        )
        return
    card = record.card
    console.print(
        f"[bold]{record.name}@{record.version}[/] {record.kind}, "
        f"[{_STAGE_STYLE.get(record.stage) or 'default'}]{record.stage}[/], "
        f"{'catalogued' if record.catalogued else 'registered'} by "
        f"{record.created_by} on {record.created_at:%Y-%m-%d %H:%M} UTC, sha256 "
        f"{record.sha256[:12]}"
    )
    console.print(
        "serving: production "
        + (f"{name}@{serving['production']}" if "production" in serving else "none")
        + ", canary "
        + (f"{name}@{serving['canary']}" if "canary" in serving else "none")
    )
    for line in _card_summary(card):
        console.print(f"  {line}")
    table = Table(title="stage history")
    for column in ("#", "version", "from", "to", "by", "evaluation", "when (UTC)"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason")
    for h in history:
        table.add_row(
            str(h.id),
            h.version,
            h.from_stage or "-",
            h.to_stage,
            h.actor,
            h.evaluation_id or "",
            f"{h.changed_at:%Y-%m-%d %H:%M}",
            h.reason or "",
        )
    console.print(table)
    if record.catalogued:
        console.print(
            "catalogued: the models config decides which version serves; it is not "
            "evaluated or promoted (retire a version to refuse it)"
        )
    elif not evaluations:
        console.print(
            f"no evaluation of {name}@{record.version}; run `sluice models evaluate "
            f"{name} {record.version}`"
        )
    for e in evaluations:
        gate = e.metrics.get("gate", {})
        console.print(
            f"{e.id} against {_baseline(name, e.baseline_version)} by {e.created_by} on "
            f"{e.created_at:%Y-%m-%d %H:%M}: "
            + ("[green]passed[/]" if e.passed else "[red]did not pass[/]")
            + (f" - {gate['why']}" if gate.get("why") else "")
        )


@app.command("evaluate")
@handle_errors
def evaluate(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="The candidate or canary version.")],
    holdout: Annotated[
        Path | None,
        typer.Option(
            help="Held-out CSV text,category both versions are scored on "
            "(default: the shipped support sample's test set)."
        ),
    ] = None,
    as_json: bool = JsonOption,
) -> None:
    """Evaluate a version against the production version and record the result.

    The gate: production's automation rate is the share of held-out items at or above
    its calibrated threshold; the candidate's most confident items at that same rate
    must be labelled right at least as often as production's (minus
    SLUICE_PROMOTION_PRECISION_TOLERANCE). Promotion needs a passing evaluation against
    the current production version. With no production version it passes at once.
    """
    from sluice.governance import authorize
    from sluice.models import evaluate_for_promotion, read_labelled_csv
    from sluice.pipelines.support_triage import sample_path

    me = local_principal()
    data = read_labelled_csv(holdout or sample_path("test.csv"))
    with runtime() as rt:
        authorize(rt.store, me, "models:train")
        record = evaluate_for_promotion(
            rt.settings, rt.models, name, version, data, created_by=me.actor
        )
    if as_json:
        emit_json(record.to_dict())
        return
    metrics = record.metrics
    prod, cand = metrics.get("production") or {}, metrics["candidate"]
    table = Table("held-out figure", _baseline(name, record.baseline_version), f"{name}@{version}")
    for key, label in (
        ("accuracy", "accuracy"),
        ("macro_f1", "macro-F1"),
        ("automation", "automation at its own gate"),
        ("auto_precision", "precision of auto-handled"),
    ):
        table.add_row(label, _fmt(prod.get(key)), _fmt(cand.get(key)))
    console.print(f"{record.id}: {name}@{version} on {metrics['holdout_rows']} held-out rows")
    console.print(table)
    _print_gate(record)
    if record.passed:
        console.print(f"promote with `sluice models promote {name} {version} [--to canary]`")


@app.command("promote")
@handle_errors
def promote(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="The version to promote.")],
    to: Annotated[
        Literal["canary", "production"],
        typer.Option(help="canary: takes the gateway's canary share; production: serves all."),
    ] = "production",
    reason: Annotated[str | None, typer.Option(help="Why (kept in the history).")] = None,
    as_json: bool = JsonOption,
) -> None:
    """Promote a candidate to canary or production, or a canary to production.

    Needs a passing evaluation of VERSION against the current production version
    (`sluice models evaluate NAME VERSION`). The production version it replaces is
    retired; so is the canary it replaces. Gateways pick the change up within
    SLUICE_MODEL_REFRESH_SECONDS.
    """
    from sluice.governance import authorize

    me = local_principal()
    with runtime() as rt:
        authorize(rt.store, me, "models:promote")
        record = rt.models.promote(name, version, to=to, actor=me.actor, reason=reason)
    if as_json:
        emit_json(record.to_dict())
        return
    console.print(f"{record.name}@{record.version} is now {record.stage}")


@app.command("rollback")
@handle_errors
def rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    reason: Annotated[str | None, typer.Option(help="Why (kept in the history).")] = None,
    as_json: bool = JsonOption,
) -> None:
    """Retire the production version and restore the one that served before it.

    The version restored comes from the stage history (`sluice models show NAME`);
    rolling back again walks further back. No evaluation is needed: it served before.
    """
    from sluice.errors import ModelNotFoundError
    from sluice.governance import authorize

    me = local_principal()
    with runtime() as rt:
        authorize(rt.store, me, "models:promote")
        try:
            before = rt.models.production(name)
        except ModelNotFoundError:
            before = None  # the rollback itself says why there is nothing to roll back
        record = rt.models.rollback(name, actor=me.actor, reason=reason)
    if as_json:
        emit_json({"retired": before and before.to_dict(), "production": record.to_dict()})
        return
    console.print(
        f"{name}@{before and before.version} is retired; {record.name}@{record.version} is "
        "production again"
    )


@app.command("retire")
@handle_errors
def retire(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="The candidate or canary version to retire.")],
    reason: Annotated[str | None, typer.Option(help="Why (kept in the history).")] = None,
    as_json: bool = JsonOption,
) -> None:
    """Retire a candidate or canary (e.g. stop a canary). Production cannot be retired.

    A retired version comes back only through `sluice models rollback`. A catalogued
    model (served, as the models config declares it) can be retired at any stage: it
    stays retired, and processes that declare that version refuse it.
    """
    from sluice.governance import authorize

    me = local_principal()
    with runtime() as rt:
        authorize(rt.store, me, "models:promote")
        record = rt.models.retire(name, version, actor=me.actor, reason=reason)
    if as_json:
        emit_json(record.to_dict())
        return
    console.print(f"{record.name}@{record.version} is retired")
    if record.catalogued:
        console.print(
            "processes that declare this version in the models config will refuse it: "
            f"declare another version of {record.name} there"
        )


def _baseline(name: str, version: str | None) -> str:
    return f"{name}@{version}" if version else "no production"


def _card_summary(card: Any) -> list[str]:
    """A few lines of a classifier's card (catalogued models: endpoint; others: keys)."""
    if card.get("catalogued"):
        rest = sorted(k for k in card if k not in ("endpoint", "catalogued"))
        return [
            f"served at {card.get('endpoint', '?')} (catalogued: no artifact in the registry)",
            "card: " + (", ".join(rest) if rest else "nothing else"),
        ]
    metrics, gate = card.get("metrics", {}), card.get("gate", {})
    lines = []
    if "training_rows" in card:
        lines.append(
            f"trained on {card['training_rows']} rows of {card.get('training_data', '?')} "
            f"(sha256 {str(card.get('training_sha256', ''))[:12]}), encoder "
            f"{card.get('encoder', '?')}"
        )
    if metrics:
        lines.append(
            f"cross-validated accuracy {_fmt(metrics.get('cv_accuracy'))}, macro-F1 "
            f"{_fmt(metrics.get('cv_macro_f1'))}"
        )
    if gate:
        lines.append(
            f"gate threshold {_fmt(gate.get('threshold'))} automates "
            f"{_pct(gate.get('cv_automation'))} (cross-validated) at "
            f"{_pct(gate.get('target_precision'))} precision"
        )
    if "corrections" in card:
        lines.append(f"with {card['corrections'].get('count')} reviewer correction(s)")
    if not lines:
        lines.append("card: " + ", ".join(sorted(card)) if card else "card: empty")
    return lines


def _print_gate(record: Any) -> None:
    gate = record.metrics.get("gate", {})
    verdict = "[green]passes[/]" if record.passed else "[red]does not pass[/]"
    console.print(f"promotion gate {verdict}: {gate.get('why', '')}", highlight=False)
