"""Replay: run past items through their pipeline again, with no side effects, and compare.

A replay takes each item's recorded input (the event data as stored and audited), runs
the pipeline's steps and gate in memory with the models given (``model_pins``, e.g. a
candidate classifier), and computes the action the gate would have allowed. Nothing is
written to the outbox or the items: actions go to the replay's *dry-run outbox*, which is
part of the returned report. Only the fact that a replay ran is audited.

Each item's decision is compared with the original one:

* ``auto`` decisions: the same label and action, or a changed label;
* ``auto -> review`` / ``review -> auto``: the gate's verdict moved;
* where a human decided the original, the replay's proposal is checked against the
  human's label - the evidence a promotion needs (would the candidate have got the
  reviewed items right, and would it have handled them automatically).

Example:
    >>> report = replay_items(settings, store, item_ids, model_pins={"support-intent": "2"})
    ... # doctest: +SKIP
    >>> report.summary["changed"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select

from sluice.config import Settings
from sluice.errors import ConfigError, NotFoundError
from sluice.execution.pipeline import Pipeline, get_pipeline
from sluice.execution.records import load_views
from sluice.execution.tables import outbox, work_items
from sluice.execution.types import Action, Auto, ItemView, Resolution, Review, StepOutput
from sluice.governance import AuditEvent, append, digest
from sluice.store import Store

__all__ = ["ReplayReport", "replay_items", "replay_since"]

_CHUNK = 256


@dataclass
class ReplayReport:
    """What a replay found.

    ``items`` has one comparison per item; ``dry_run_outbox`` the actions the replay
    would have written; ``summary`` the counts by kind of change.
    """

    pipeline: str
    model_pins: Mapping[str, str]
    items: list[dict[str, Any]] = field(default_factory=list)
    dry_run_outbox: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (``sluice replay --json``)."""
        return {
            "pipeline": self.pipeline,
            "model_pins": dict(self.model_pins),
            "summary": self.summary,
            "items": self.items,
            "dry_run_outbox": self.dry_run_outbox,
        }


def _original(item: Any, view: ItemView, action: Any) -> dict[str, Any]:
    gate = view.outputs.get("gate", {})
    review = view.outputs.get("review")
    result = item.result or {}
    return {
        "verdict": gate.get("verdict"),
        "proposal_label": (gate.get("proposal") or {}).get("label"),
        "label": result.get("label"),
        "decided_by": result.get("decided_by"),
        "human_label": review.get("label") if review else None,
        "human_outcome": review.get("outcome") if review else None,
        "action": {"action": action.action, "payload": action.payload} if action else None,
    }


def _compare(original: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """How the decision moved: ``unchanged``, ``label``, ``auto->review`` ..."""
    before, after = original["verdict"], new["verdict"]
    if before is None:
        return "no original decision"
    if before != after:
        return f"{before}->{after}"
    if after == "auto" and (original["label"], original["action"]) != (new["label"], new["action"]):
        return "label" if original["label"] != new["label"] else "action"
    if after == "review" and original["proposal_label"] != new["proposal_label"]:
        return "proposal"
    return "unchanged"


def _run_pipeline(pipeline: Pipeline, ctx: Any, views: list[ItemView]) -> list[ItemView]:
    """The pipeline's steps over fresh views of ``views``, in memory."""
    current = [replace(v, outputs={}) for v in views]
    for spec in pipeline.steps:
        outputs: Sequence[StepOutput] = spec.fn(ctx, current)
        current = [
            replace(v, outputs={**v.outputs, spec.name: dict(out.value)})
            for v, out in zip(current, outputs, strict=True)
        ]
    return current


def _decide(pipeline: Pipeline, ctx: Any, view: ItemView) -> tuple[dict[str, Any], Action | None]:
    assert pipeline.gate_fn is not None
    assert pipeline.action_fn is not None
    verdict = pipeline.gate_fn(ctx, view)
    action = None
    label = verdict.proposal.get("label")
    if isinstance(verdict, Auto):
        resolution = Resolution("auto", "auto", dict(verdict.proposal), label=label)
        action = pipeline.action_fn(ctx, view, resolution)
    decision = {
        "verdict": "auto" if isinstance(verdict, Auto) else "review",
        "proposal_label": label,
        "label": label if isinstance(verdict, Auto) else None,
        "confidence": verdict.proposal.get("confidence"),
        "reason": verdict.reason if isinstance(verdict, Review) else None,
        "action": {"action": action.action, "payload": dict(action.payload)} if action else None,
    }
    return decision, action


def replay_items(
    settings: Settings,
    store: Store,
    item_ids: Sequence[str],
    *,
    model_pins: Mapping[str, str] | None = None,
    actor: str = "cli",
) -> ReplayReport:
    """Replay the given items (all of one pipeline) - module docs.

    Raises:
        NotFoundError: An item does not exist.
        ConfigError: The items belong to different pipelines.
    """
    pins = dict(model_pins or {})
    with store.read() as conn:
        rows = {
            r.id: r for r in conn.execute(select(work_items).where(work_items.c.id.in_(item_ids)))
        }
        missing = [i for i in item_ids if i not in rows]
        if missing:
            raise NotFoundError(
                f"no item {missing[0]!r}", hint="list items with `sluice items list`"
            )
        pipelines = {r.pipeline for r in rows.values()}
        if len(pipelines) > 1:
            raise ConfigError(
                f"items of several pipelines ({', '.join(sorted(pipelines))})",
                hint="replay one pipeline at a time (--pipeline)",
            )
        views = {v.id: v for v in load_views(conn, item_ids=list(item_ids), status=None)}
        actions = {
            r.item_id: r for r in conn.execute(select(outbox).where(outbox.c.item_id.in_(item_ids)))
        }
    pipeline = get_pipeline(pipelines.pop()) if pipelines else None
    report = ReplayReport(pipeline=pipeline.name if pipeline else "", model_pins=pins)
    if pipeline is None:
        report.summary = {"items": 0, "changed": 0, "transitions": {}}
        return report
    pipeline.check()
    pinned = settings.model_copy(update={"model_pins": {**settings.model_pins, **pins}})
    ctx = replace(pipeline.load_resources(pinned, store), replaying=True)
    try:
        transitions: Counter[str] = Counter()
        agreement = {"original": 0, "replay": 0, "reviewed": 0, "replay_auto_correct": 0}
        ordered = [views[i] for i in item_ids]
        for start in range(0, len(ordered), _CHUNK):
            chunk = ordered[start : start + _CHUNK]
            for old, new_view in zip(chunk, _run_pipeline(pipeline, ctx, chunk), strict=True):
                original = _original(rows[old.id], old, actions.get(old.id))
                decision, action = _decide(pipeline, ctx, new_view)
                change = _compare(original, decision)
                transitions[change] += 1
                human = original["human_label"]
                if human is not None and original["human_outcome"] != "reject":
                    agreement["reviewed"] += 1
                    agreement["original"] += original["proposal_label"] == human
                    agreement["replay"] += decision["proposal_label"] == human
                    agreement["replay_auto_correct"] += (
                        decision["verdict"] == "auto" and decision["label"] == human
                    )
                report.items.append(
                    {"item_id": old.id, "change": change, "original": original, "replay": decision}
                )
                if action is not None:
                    report.dry_run_outbox.append(
                        {
                            "item_id": old.id,
                            "action": action.action,
                            "payload": dict(action.payload),
                        }
                    )
    finally:
        close = getattr(ctx.resources, "close", None)
        if callable(close):
            close()
    changed = sum(n for k, n in transitions.items() if k != "unchanged")
    report.summary = {
        "items": len(report.items),
        "changed": changed,
        "unchanged": transitions.get("unchanged", 0),
        "transitions": dict(sorted(transitions.items())),
        "reviewed_items": agreement["reviewed"],
        "reviewed_agreement_original": agreement["original"],
        "reviewed_agreement_replay": agreement["replay"],
        "reviewed_now_auto_and_right": agreement["replay_auto_correct"],
    }
    with store.begin() as conn:
        append(
            conn,
            [
                AuditEvent(
                    actor,
                    "replay.run",
                    pipeline.name,
                    {
                        "model_pins": pins,
                        "summary": report.summary,
                        "items_sha256": digest(sorted(item_ids)),
                    },
                )
            ],
        )
    return report


def replay_since(
    settings: Settings,
    store: Store,
    pipeline: str,
    since: datetime,
    *,
    model_pins: Mapping[str, str] | None = None,
    actor: str = "cli",
    limit: int = 100_000,
) -> ReplayReport:
    """Replay the settled items of ``pipeline`` created at or after ``since``."""
    with store.read() as conn:
        ids = list(
            conn.execute(
                select(work_items.c.id)
                .where(
                    work_items.c.pipeline == pipeline,
                    work_items.c.created_at >= since,
                    work_items.c.status.in_(("completed", "rejected", "waiting_review")),
                )
                .order_by(work_items.c.created_at)
                .limit(limit)
            ).scalars()
        )
    get_pipeline(pipeline)  # a clear error for an unknown name, even with no items
    return replay_items(settings, store, ids, model_pins=model_pins, actor=actor)
