"""Smoke run of ``python -m bench.retrieval`` on a tiny BEIR folder written here.

Eight short abstracts, three queries with judgements, on each backend. The figures of
so small a run mean little; the test checks that every part runs, that documents are
found by their BEIR ids, and that Sluice's BM25 over whole documents equals the same
formula computed in plain Python (the benchmark's check of the keyword index).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import POSTGRES_URL

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.bench

CORPUS = {
    "d1": ("Aspirin and heart attacks", "Daily low-dose aspirin lowers the risk of a first "
           "myocardial infarction in adults over fifty. Bleeding risk rises slightly."),
    "d2": ("Vitamin D and bone density", "Vitamin D supplements did not change bone mineral "
           "density in healthy adults after two years of daily doses."),
    "d3": ("Sleep and memory", "Deep sleep consolidates declarative memory: subjects deprived "
           "of slow-wave sleep recalled fewer word pairs the next morning."),
    "d4": ("Coffee and liver disease", "Coffee drinkers had lower rates of liver cirrhosis "
           "and liver cancer in a cohort of one hundred thousand adults."),
    "d5": ("Exercise and depression", "Aerobic exercise three times a week reduced symptoms "
           "of depression as much as medication in older patients."),
    "d6": ("Gut bacteria and obesity", "Mice given gut bacteria from obese twins gained more "
           "fat than mice given bacteria from lean twins."),
    "d7": ("Salt and blood pressure", "Cutting dietary salt lowered systolic blood pressure "
           "by five points in people with hypertension."),
    "d8": ("Smoking and lung cancer", "Tobacco smoking causes most lung cancers; the risk "
           "falls steadily in the years after quitting."),
}  # fmt: skip
QUERIES = {
    "q1": "Aspirin reduces the risk of myocardial infarction.",
    "q2": "Drinking coffee protects the liver.",
    "q3": "Reducing salt intake lowers blood pressure.",
    "q9": "A query without judgements is left out.",
}
QRELS = [("q1", "d1"), ("q2", "d4"), ("q3", "d7")]


def _write_beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w") as out:
        for doc_id, (title, text) in CORPUS.items():
            out.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w") as out:
        for qid, text in QUERIES.items():
            out.write(json.dumps({"_id": qid, "text": text}) + "\n")
    rows = "".join(f"{q}\t{d}\t1\n" for q, d in QRELS)
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return folder


def test_retrieval_benchmark_runs_every_part(
    tmp_path: Path, model_cache: Path, backend: str
) -> None:
    _write_beir(tmp_path / "data" / "tiny-beir")
    env = {
        **os.environ,
        "SLUICE_MODEL_CACHE": str(model_cache),
        "SLUICE_HOME": str(tmp_path / "home"),
        "SLUICE_DATA_DIR": str(tmp_path / "data"),  # --dataset tiny -> tiny-beir
    }
    command = [sys.executable, "-m", "bench.retrieval", "--dataset", "tiny", "--no-docs"]
    command += ["--json", "--depth", "5"]
    if backend == "postgres":
        command += ["--postgres", POSTGRES_URL]
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert result["store"] == ("postgresql" if backend == "postgres" else "sqlite")
    assert (result["dataset"], result["documents"], result["queries"]) == ("tiny", 8, 3)
    assert result["ingest"]["documents"] == 8 and result["ingest"]["failures"] == 0
    assert result["ingest"]["chunks_per_s"] > 0 and result["build"]["chunks"] == 8
    assert "anserini-flat" in result["reference"]
    assert "published" not in result["reference"]["anserini-flat"]  # SciFact's figures only

    for name in ("default", "whole"):
        entry = result["indexes"][name]
        assert entry["chunks_per_document"] == 1.0  # every abstract fits one chunk
        for mode in ("bm25", "dense", "hybrid"):
            # Each query names its document plainly: every retriever ranks it first.
            assert entry["quality"][mode] == {"ndcg@10": 1.0, "recall@100": 1.0}, (name, mode)
            latency = entry["latency_ms"][mode]
            assert latency["n"] == 3 and 0 < latency["p50"] <= latency["p95"]

    check = result["check"]
    assert check["sluice_bm25_minus_its_formula"] == 0.0
    assert "published_bm25_ndcg@10" not in check
