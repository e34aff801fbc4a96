"""How often support triage's canned reply cites an on-topic passage, on the shipped sample.

Runs the demo (SQLite in a temporary home, every test message), then reads each item's
lineage: the passage its reply cites is *on topic* when it is an article written for
the message's true intent (``intents`` in its front matter) or an FAQ row of that
intent's product area (looser: the FAQ table has no intents). Prints one JSON object.

    .venv/bin/python scripts/support_sample/measure_grounding.py
"""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

from sluice.config import Settings
from sluice.execution import get_item, list_items
from sluice.knowledge import read_sources
from sluice.pipelines.support_triage import sample_path
from sluice.pipelines.support_triage.demo import run_demo
from sluice.runtime import Runtime


def main() -> None:
    """Run the demo in a throwaway home and count on-topic citations."""
    kb = sample_path("kb")
    documents = {d.doc_id: d for d in read_sources(kb, root=kb).documents}
    intents = json.loads(sample_path("intents.json").read_text())
    with sample_path("test.csv").open(newline="", encoding="utf-8") as handle:
        truth = {row["text"]: row["category"] for row in csv.DictReader(handle)}
    with tempfile.TemporaryDirectory() as home, Runtime(Settings(home=Path(home))) as rt:
        result = run_demo(rt)
        counts = {
            "items": 0,
            "grounded": 0,
            "on_topic": 0,
            "faq": 0,
            "article": 0,
            "no_reply": 0,
        }
        for listed in list_items(rt.store, limit=100_000):
            item = get_item(rt.store, listed["id"])
            steps = {s["step"]: s for s in item["steps"]}
            label = truth[item["event"]["data"]["text"]]
            counts["items"] += 1
            drafted = steps["draft_reply"]["output"]
            counts["grounded"] += bool(drafted.get("grounded"))
            cited = drafted.get("citations") or []
            if not cited:
                counts["no_reply"] += 1
                continue
            (lookup,) = steps["retrieve"]["retrieval"]
            hit = next(h for h in lookup["hits"] if h["chunk_id"] == cited[0])
            doc = documents[hit["citation"]["doc_id"]]
            if doc.format.value == "csv_faq":
                counts["faq"] += 1
                on_topic = doc.metadata.get("product") == intents[label]["queue"]
            else:
                counts["article"] += 1
                on_topic = label in (doc.metadata.get("intents") or ())
            counts["on_topic"] += on_topic
    print(
        json.dumps(
            counts
            | {
                "on_topic_rate": round(counts["on_topic"] / max(1, counts["items"]), 4),
                "automation_rate": result.report.automation_rate,
            }
        )
    )


if __name__ == "__main__":
    main()
