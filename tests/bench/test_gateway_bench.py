"""Smoke run of ``python -m bench.gateway`` on the shipped sample, with tiny sizes.

The figures of so short a run mean nothing; the test checks that every part runs and
reports what it should. Part 4 (LLM) runs where ``sluice[llm]`` is installed and must
otherwise say why it was skipped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sluice.pipelines.support_triage import sample_path

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.bench


def test_gateway_benchmark_runs_every_part(tmp_path: Path, model_cache: Path) -> None:
    env = {
        **os.environ,
        "SLUICE_MODEL_CACHE": str(model_cache),
        "SLUICE_HOME": str(tmp_path / "home"),
    }
    command = [
        sys.executable,
        *("-m", "bench.gateway", "--data", str(sample_path("test.csv").parent)),
        *("--calls", "20", "--rounds", "2", "--cache-calls", "10"),
        *("--seconds", "0.3", "--batch-rounds", "1"),
        *("--llm-calls", "3", "--max-tokens", "2", "--no-docs", "--json"),
    ]
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])

    for kind in ("embed", "classify"):
        overhead = result["overhead"][kind]
        assert overhead["calls_each"] == 20
        assert overhead["ratio"] > 0 and overhead["gateway_ms_p50"] > 0

    cache = result["cache"]
    assert cache["texts"] == 10 and cache["unexpected_outcomes"] == 0
    assert cache["memory"]["p50_ms"] < cache["miss"]["p50_ms"]

    batching = result["micro_batching"]
    assert batching["off_texts_per_s"] > 0 and batching["on_texts_per_s"] > 0
    assert batching["mean_batch"] >= 1

    llm = result["llm"]
    if importlib.util.find_spec("llama_cpp") is None:
        assert "llama_cpp" in llm["skipped"]
        return
    assert llm["calls_each"] == 3 and llm["sluice_over_direct"] > 0
    assert llm["non_loopback_connections_refused"] == []
    assert llm["same_completion_tokens"]
    assert all(llm["logprobs_returned"].values()), llm["logprobs_returned"]
    if importlib.util.find_spec("litellm") is None:
        assert "litellm" in llm["litellm_skipped"]
    else:
        assert llm["litellm_over_direct"] > 0 and llm["sluice_over_litellm"] > 0
