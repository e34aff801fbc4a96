"""The PII benchmark's scoring, on hand-made records (and a smoke run on the real data)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from bench.pii import score

RECORD = {
    "full_text": "Mr. Bo Lind lives at 3784 Archwood Avenue and works at Acme",
    "spans": [
        {"entity_type": "PERSON", "start_position": 4, "end_position": 11},
        {"entity_type": "STREET_ADDRESS", "start_position": 21, "end_position": 41},
        {"entity_type": "ORGANIZATION", "start_position": 55, "end_position": 59},
    ],
}


def test_token_and_span_scores_on_a_known_case() -> None:
    # PERSON right, the address found in part, Acme predicted
    # as PERSON: the organisation is not targeted, so that token is a false positive.
    predicted = [("PERSON", 4, 11), ("STREET_ADDRESS", 21, 29), ("PERSON", 55, 59)]
    out = score([RECORD], [predicted])
    overall = out["overall"]
    # Tokens counted: Bo, Lind, 3784, Archwood ("Avenue" is not a skip word), Acme.
    assert overall["tokens"] == 5
    # Predicted tokens: Bo, Lind, 3784, Archwood (hits) and Acme (a miss).
    assert overall["precision"] == pytest.approx(4 / 5)
    assert overall["recall"] == pytest.approx(4 / 5)
    assert out["per_type"]["PERSON"]["precision"] == pytest.approx(2 / 3)
    assert out["per_type"]["PERSON"]["span_exact_recall"] == 1.0
    assert out["per_type"]["STREET_ADDRESS"]["span_exact_recall"] == 0.0
    assert out["per_type"]["STREET_ADDRESS"]["span_overlap_recall"] == 1.0


def test_a_perfect_prediction_scores_one() -> None:
    predicted = [("PERSON", 4, 11), ("STREET_ADDRESS", 21, 41)]
    overall = score([RECORD], [predicted])["overall"]
    assert overall["precision"] == overall["recall"] == overall["f2"] == 1.0


@pytest.mark.bench
def test_the_benchmark_runs_on_the_dev_half(tmp_path: Path) -> None:
    data = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pii-synth-dev"
    if not data.is_dir():
        pytest.skip(f"no dataset at {data}")
    out = subprocess.run(
        [sys.executable, "-m", "bench.pii", "--data", str(data), "--json", "--no-docs"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["records"] > 0
    assert result["scores"]["overall"]["f2"] > result["baseline_token_level"]["f2"]
