"""Support triage on Banking77: accuracy, automation at fixed precision, the cost of durability.

    python -m bench.triage_banking77 [--data DIR] [--json]

DIR holds ``train.csv`` and ``test.csv`` with columns ``text,category`` (default:
``$SLUICE_DATA_DIR/banking77``). The benchmark:

1. trains the support-intent classifier on train.csv exactly as ``sluice models train``
   does (int8 MiniLM embeddings, logistic regression, gate threshold calibrated on
   out-of-fold predictions over the training data for the target precision);
2. reports test accuracy, macro-F1, and the automation rate and precision on test.csv at
   that threshold;
3. measures encoder throughput and single-sentence latency;
4. runs every test message through the support-triage pipeline twice in one process: as
   a plain loop (the same steps and gate in batches, nothing stored) and durably
   (submitted as CloudEvents, run by a worker on DBOS with every step checkpointed, a
   step run recorded per item and step, outbox rows and review tasks written). The ratio
   of the two throughputs is the orchestration overhead.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import (
    Timer,
    data_dir,
    emit,
    machine,
    parser,
    scratch_database,
    write_section,
)


def main() -> None:
    args = _args()
    folder = data_dir(args.data, "banking77")
    from sluice.config import Settings
    from sluice.models import load_encoder, read_labelled_csv, train_classifier
    from sluice.models.training import LabelledData, load_classifier
    from sluice.pipelines.support_triage import triage
    from sluice.runtime import Runtime

    train = read_labelled_csv(folder / "train.csv")
    test = read_labelled_csv(folder / "test.csv")
    if args.limit:
        test = LabelledData(
            test.texts[: args.limit], test.labels[: args.limit], test.sha256, test.origin
        )
    result: dict[str, Any] = {
        "benchmark": "triage_banking77",
        "data": str(folder),
        "train_rows": len(train.texts),
        "test_rows": len(test.texts),
        "labels": len(set(train.labels)),
        "target_precision": args.target_precision,
        "machine": machine(),
    }
    if args.batch_size:
        triage.batch_size = args.batch_size

    with (
        tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp,
        scratch_database(args.postgres) as database_url,
    ):
        cache = Path(tmp) / "models" if args.cold_encoder else Settings().models_dir
        settings = Settings(
            home=Path(tmp),
            database_url=database_url,
            target_precision=args.target_precision,
            model_cache=cache,
            executor_id="bench",
        )
        with Timer() as t_build:
            encoder = load_encoder(settings)
        result["encoder"] = {
            "name": encoder.name,
            "version": encoder.version,
            "processes": encoder.processes,
            "load_seconds": round(t_build.seconds, 2),
        }
        with Runtime(settings) as rt:
            with Timer() as t_train:
                record = train_classifier(settings, rt.models, "support-intent", train)
            _, head, calibration = load_classifier(rt.models, "support-intent")
            threshold = calibration.threshold(args.target_precision)
            result.update(
                model=f"{record.name}@{record.version}",
                train_seconds=round(t_train.seconds, 1),
                threshold=threshold,
                cv_automation=round(calibration.automation(threshold), 4),
            )
            with Timer() as t_encode:
                vectors = encoder.encode(test.texts)
            result["encode_sentences_per_s"] = round(len(test.texts) / t_encode.seconds, 1)
            result["encode_one_ms_p50"] = _one_sentence_ms(encoder, test.texts[:200])
            result.update(_quality(head, vectors, test.labels, threshold))
            batch_size = triage.batch_size or settings.batch_size
            result["plain_loop"] = _plain_loop(rt, triage, test.texts, batch_size)
            # Both runs start from a cold model cache: otherwise the durable run would
            # read the plain loop's embeddings instead of computing them.
            _clear_model_cache(rt)
            result["durable"] = _durable(rt, triage, test.texts, test.labels, args.concurrency)
            result["durable"]["batch_size"] = batch_size
    plain = result["plain_loop"]["items_per_s"]
    result["durable_over_plain"] = round(result["durable"]["steady_items_per_s"] / plain, 3)
    result["durable_over_plain_with_startup"] = round(result["durable"]["items_per_s"] / plain, 3)
    _report(result, args)


def _args() -> Any:
    p = parser(__doc__.split("\n\n")[0], "banking77")
    p.add_argument("--target-precision", type=float, default=0.99)
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="items per durable batch (default: the pipeline's, 128)",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="batches a worker runs at once (default: the pipeline's, 2)",
    )
    p.add_argument("--limit", type=int, default=None, help="use only the first N test rows")
    p.add_argument(
        "--postgres",
        default=None,
        metavar="URL",
        help="run on PostgreSQL: a scratch database is created on this server and dropped "
        "afterwards (default: SQLite in a temporary dir)",
    )
    p.add_argument(
        "--cold-encoder",
        action="store_true",
        help="build the int8 encoder from scratch instead of using the cache",
    )
    return p.parse_args()


def _one_sentence_ms(encoder: Any, texts: list[str]) -> float:
    stamps = [time.perf_counter()]
    for text in texts:
        encoder.encode([text])
        stamps.append(time.perf_counter())
    return round(float(np.median(np.diff(stamps))) * 1000, 2)


def _quality(head: Any, vectors: Any, labels: list[str], threshold: float) -> dict[str, Any]:
    from sklearn.metrics import f1_score

    predictions = head.predict(vectors)
    predicted = [p.label for p in predictions]
    confident = np.array([p.confidence >= threshold for p in predictions])
    correct = np.array([p == g for p, g in zip(predicted, labels, strict=True)])
    return {
        "test_accuracy": round(float(correct.mean()), 4),
        "test_macro_f1": round(float(f1_score(labels, predicted, average="macro")), 4),
        "test_automation": round(float(confident.mean()), 4),
        "test_auto_precision": (
            round(float(correct[confident].mean()), 4) if confident.any() else None
        ),
    }


def _plain_loop(rt: Any, pipeline: Any, texts: list[str], batch_size: int) -> dict[str, Any]:
    """The pipeline's steps and gate called directly: no store, no engine, nothing durable.

    It runs under the same process settings a worker uses (one BLAS thread, a short GIL
    switch interval; see ``Worker.run``), so the comparison is fair.
    """
    from threadpoolctl import threadpool_limits

    from sluice.execution import ItemView

    ctx = pipeline.load_resources(rt.settings, rt.store)
    now = datetime.now(UTC)
    views = [
        ItemView(
            id=str(i),
            pipeline=pipeline.name,
            source="plain",
            event_id=str(i),
            type="t",
            subject=None,
            data={"text": t},
            priority=2,
            created_at=now,
        )
        for i, t in enumerate(texts)
    ]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(min(switch, 0.0002))
    auto = 0
    cpu0 = time.process_time()
    try:
        with threadpool_limits(1, user_api="blas"), Timer() as t:
            for start in range(0, len(views), batch_size):
                batch = views[start : start + batch_size]
                outputs: dict[str, list[Any]] = {}
                for spec in pipeline.steps:
                    current = [_with_outputs(v, outputs, i) for i, v in enumerate(batch)]
                    outputs[spec.name] = list(spec.fn(ctx, current))
                for i, view in enumerate(batch):
                    verdict = pipeline.gate_fn(ctx, _with_outputs(view, outputs, i))
                    auto += type(verdict).__name__ == "Auto"
    finally:
        sys.setswitchinterval(switch)
        ctx.resources.close()  # flush the gateway's call records
    cpu = time.process_time() - cpu0
    return {
        "seconds": round(t.seconds, 3),
        "items_per_s": round(len(texts) / t.seconds, 1),
        "cpu_ms_per_item_main_process": round(1000 * cpu / len(texts), 3),
        "auto_handled": auto,
    }


def _clear_model_cache(rt: Any) -> None:
    from sqlalchemy import delete

    from sluice.models.gateway_tables import model_cache

    with rt.store.begin() as conn:
        conn.execute(delete(model_cache))


def _with_outputs(view: Any, outputs: dict[str, list[Any]], index: int) -> Any:
    from dataclasses import replace

    return replace(view, outputs={k: o[index].value for k, o in outputs.items()})


def _durable(
    rt: Any, pipeline: Any, texts: list[str], labels: list[str], concurrency: int | None
) -> dict[str, Any]:
    from sluice.execution import parse_jsonl, run_window, submit_lines
    from sluice.observability import build_run_report

    source = "bench/banking77"
    lines = [
        json.dumps(
            {
                "specversion": "1.0",
                "id": f"b{i}",
                "source": source,
                "type": "bench.message",
                "data": {"text": t},
            }
        )
        for i, t in enumerate(texts)
    ]
    with Timer() as t_submit:
        submitted = submit_lines(
            rt.store,
            pipeline,
            parse_jsonl(lines, max_bytes=rt.settings.max_event_bytes),
            origin="bench",
        )
    worker = rt.worker([pipeline.name], concurrency=concurrency)
    cpu0 = time.process_time()
    with Timer() as t_run:
        worker.run(drain=True)
    cpu = time.process_time() - cpu0
    truth = {f"b{i}": label for i, label in enumerate(labels)}
    report = build_run_report(
        rt.store, pipeline=pipeline.name, source=source, wall_seconds=t_run.seconds, truth=truth
    )
    window = run_window(rt.store, source=source)
    assert window is not None, "the durable run recorded no step runs"
    steady = (window[1] - window[0]).total_seconds()
    return {
        "store": rt.store.dialect,
        "intake_events_per_s": round(len(submitted.accepted) / t_submit.seconds, 1),
        "seconds": round(t_run.seconds, 3),
        "items_per_s": report.throughput_per_s,
        "steady_seconds": round(steady, 3),
        "steady_items_per_s": round(report.processed / steady, 1),
        "startup_and_drain_seconds": round(t_run.seconds - steady, 3),
        "cpu_ms_per_item_main_process": round(1000 * cpu / max(report.processed, 1), 3),
        "processed": report.processed,
        "auto_handled": report.auto_handled,
        "waiting_review": report.waiting_review,
        "auto_precision": report.auto_precision,
        "latency_ms": report.latency_ms,
        "end_to_end_ms": report.end_to_end_ms,
    }


def _report(result: dict[str, Any], args: Any) -> None:
    d, p = result["durable"], result["plain_loop"]
    precision = result["test_auto_precision"]
    rows = [
        ("test accuracy", f"{result['test_accuracy']:.1%}"),
        ("test macro-F1", f"{result['test_macro_f1']:.3f}"),
        (
            f"gate threshold for {result['target_precision']:.0%} precision (train CV)",
            f"{result['threshold']:.3f}",
        ),
        ("automation on test at that threshold", f"{result['test_automation']:.1%}"),
        (
            "precision of auto-handled test items",
            "n/a" if precision is None else f"{precision:.1%}",
        ),
        (
            "encoder throughput",
            f"{result['encode_sentences_per_s']:.0f} sentences/s "
            f"({result['encoder']['processes']} processes)",
        ),
        ("encoder latency, one sentence (p50)", f"{result['encode_one_ms_p50']:.2f} ms"),
        ("plain loop (no durability)", f"{p['items_per_s']:.0f} items/s"),
        (
            f"durable pipeline ({d['store']}, batches of {d['batch_size']}), steady state",
            f"{d['steady_items_per_s']:.0f} items/s",
        ),
        (
            "durable / plain (orchestration overhead; target >= 0.5)",
            f"{result['durable_over_plain']:.2f}",
        ),
        (
            "durable incl. engine start-up and drain",
            f"{d['items_per_s']:.0f} items/s, ratio {result['durable_over_plain_with_startup']:.2f}"
            f" ({d['startup_and_drain_seconds']:.1f} s fixed)",
        ),
        ("intake (validated and stored)", f"{d['intake_events_per_s']:.0f} events/s"),
        (
            "durable classify step latency p50 / p95",
            "{p50:.0f} / {p95:.0f} ms".format(**d["latency_ms"]["classify"]),
        ),
    ]
    emit(result, args.json, rows)
    if not args.no_docs:
        write_section(
            f"triage_banking77_{d['store']}",
            f"Support triage on Banking77 ({d['store']})",
            rows,
            notes=(
                f"{result['train_rows']} training and {result['test_rows']} test messages, "
                f"{result['labels']} intents. The threshold is chosen on out-of-fold "
                "predictions over the training data only. The plain loop runs the same steps "
                "and gate on the same encoder in batches of the same size and stores nothing; "
                "the durable run checkpoints every step in DBOS, records a step run per item "
                "and step, and writes outbox records and review tasks. Both run in one process, "
                "one after the other. Steady state is measured from the first step's start to "
                "the last step's end; the line below it adds the engine's start-up (DBOS picks "
                "up a new queue within about a second) and the drain check."
            ),
            result=result,
        )


if __name__ == "__main__":
    main()
