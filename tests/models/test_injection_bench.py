"""Smoke run of bench.injection on the shared dev data (kept out of `make test`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "prompt-injection-dev"


@pytest.mark.bench
def test_the_benchmark_reports_every_method(tmp_path: Path) -> None:
    if not DATA.is_dir():
        pytest.skip(f"no benchmark data at {DATA}")
    benign = tmp_path / "benign.csv"
    benign.write_text("text\nWhere is my parcel?\nI was charged twice.\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.injection",
            "--data",
            str(DATA),
            "--benign",
            str(benign),
            "--folds",
            "3",
            "--no-docs",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=1200,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    cv = result["cross_validated"]
    assert set(cv) >= {"heuristics", "classifier", "combined", "fold_thresholds"}
    assert len(cv["fold_thresholds"]) == 3
    total = cv["combined"]
    assert total["tp"] + total["fp"] + total["fn"] + total["tn"] == result["records"]
    assert result["default_detector"]["benign"]["benign"]["n"] == 2
