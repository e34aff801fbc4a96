"""Smoke run of ``python -m bench.drift`` on the shipped support sample (no ../shared)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.bench
def test_bench_drift_reports_delays_and_false_alarms(tmp_path: Path, model_cache: Path) -> None:
    from sluice.pipelines.support_triage import sample_path

    data = tmp_path / "data"
    data.mkdir()
    for name in ("train.csv", "test.csv"):
        shutil.copy(sample_path(name), data / name)
    env = {
        **os.environ,
        "SLUICE_HOME": str(tmp_path / "home"),
        "SLUICE_MODEL_CACHE": str(model_cache),
        "SLUICE_ENCODER_PROCESSES": "0",
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.drift",
            "--data",
            str(data),
            "--json",
            "--no-docs",
            "--held-out",
            "4",
            "--window",
            "60",
            "--step",
            "10",
            "--windows",
            "5",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(result["held_out_intents"]) == 4
    assert set(result["detection_delay_items"]) == {
        "input_length",
        "input_embedding",
        "prediction",
        "confidence",
    }
    # Messages of intents the model never saw move the embeddings and the predictions.
    assert result["detection_delay_items"]["input_embedding"] is not None
    assert result["detection_delay_items"]["prediction"] is not None
    assert all(0 <= v <= 1 for v in result["false_alarm_rate"].values())
