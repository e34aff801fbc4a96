"""The retrieval measures against values worked out by hand, and the BEIR reader."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from bench._beir import load_beir, mean_scores, ndcg_at, recall_at


def test_ndcg_and_recall_by_hand() -> None:
    judged = {"a": 1, "b": 2, "z": 0}
    # b (grade 2) at rank 2, a (grade 1) at rank 3; ideal order b, a.
    dcg = 2 / math.log2(3) + 1 / math.log2(4)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at(["x", "b", "a"], judged, 10) == pytest.approx(dcg / ideal)
    assert ndcg_at(["b", "a"], judged, 10) == pytest.approx(1.0)
    assert ndcg_at(["x", "b", "a"], judged, 1) == 0.0
    assert recall_at(["x", "b", "z"], judged, 100) == 0.5  # z is judged not relevant
    scores = mean_scores({"q1": ["b", "a"]}, {"q1": judged, "q2": {"c": 1}})
    assert scores == {"ndcg@10": pytest.approx(0.5), "recall@100": pytest.approx(0.5)}


def test_a_beir_folder_is_read_and_a_broken_one_named(tmp_path: Path) -> None:
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        json.dumps({"_id": "d1", "title": "T", "text": "body"}) + "\n"
    )
    (tmp_path / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "what?"})
        + "\n"
        + json.dumps({"_id": "q9", "text": "unjudged"})
        + "\n"
    )
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    data = load_beir(tmp_path)
    assert data.corpus == {"d1": ("T", "body")}
    assert data.queries == {"q1": "what?"}
    assert data.qrels == {"q1": {"d1": 1}}
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d2"}\n')
    with pytest.raises(SystemExit, match=r"corpus\.jsonl line 1"):
        load_beir(tmp_path)
