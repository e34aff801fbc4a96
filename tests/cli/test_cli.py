"""The command line, in process: help that teaches, JSON for scripts, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from helpers import make_settings
from sluice.cli.main import app
from sluice.runtime import Runtime


@pytest.fixture
def cli(tmp_path: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("SLUICE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SLUICE_MODEL_CACHE", str(model_cache))
    monkeypatch.setenv("SLUICE_POLL_INTERVAL_SECONDS", "0.05")
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Any:
        return runner.invoke(app, list(args), input=input)

    return invoke


def test_help_lists_the_commands_and_explains_them(cli: Any) -> None:
    out = cli("--help")
    assert out.exit_code == 0
    for command in ("demo", "submit", "worker", "items", "review", "models", "outbox", "init"):
        assert command in out.output
    submit_help = cli("submit", "--help").output
    assert "JSONL" in submit_help and "duplicate" in submit_help


def test_init_reports_where_state_lives(cli: Any, tmp_path: Path) -> None:
    out = cli("init", "--json")
    assert out.exit_code == 0, out.output
    info = json.loads(out.stdout)
    assert info["home"] == str((tmp_path / "home").resolve())
    assert info["database"] == "sqlite"
    assert "support-triage" in info["pipelines"]


def test_submit_reports_bad_lines_and_keeps_good_ones(cli: Any, tmp_path: Path) -> None:
    events = tmp_path / "in.jsonl"
    good = {"specversion": "1.0", "id": "a", "source": "cli", "type": "t", "data": {"text": "hi"}}
    events.write_text(
        "\n".join([json.dumps(good), "{nope", json.dumps({**good, "id": "b", "data": {}})]) + "\n"
    )
    out = cli("submit", "support-triage", str(events), "--json")
    assert out.exit_code == 1
    report = json.loads(out.stdout)
    assert (report["accepted"], report["rejected"]) == (1, 2)
    assert [e["line"] for e in report["errors"]] == [2, 3]
    again = cli("submit", "support-triage", str(events))
    assert "accepted 0, duplicates 1, rejected 2" in again.stdout
    assert "line 3: missing required field 'data.text'" in again.stderr
    rejects = json.loads(cli("rejects", "list", "--json").stdout)
    assert len(rejects) == 4  # both submissions' bad lines are kept


def test_submit_reads_stdin(cli: Any) -> None:
    line = json.dumps(
        {
            "specversion": "1.0",
            "id": "s",
            "source": "cli",
            "type": "t",
            "data": {"text": "from a pipe"},
        }
    )
    out = cli("submit", "support-triage", "-", "--json", input=line + "\n")
    assert out.exit_code == 0
    assert json.loads(out.stdout)["accepted"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit", "support-triage", "/no/such/file.jsonl"], "no such file"),
        (["submit", "no-such-pipeline", "-"], "unknown pipeline 'no-such-pipeline'"),
        (["items", "show", "itm_missing"], "no item 'itm_missing'"),
        (["review", "decide", "tsk_x"], "give exactly one of --approve, --reject or --label"),
        (["review", "decide", "tsk_x", "--approve"], "no review task 'tsk_x'"),
        (["items", "retry", "itm_missing"], "no item 'itm_missing'"),
    ],
)
def test_errors_are_one_clear_line_and_exit_1(cli: Any, args: list[str], message: str) -> None:
    out = cli(*args)
    assert out.exit_code == 1
    assert out.stderr.startswith("error: ")
    assert message in out.stderr
    assert "Traceback" not in out.output


def test_json_errors_are_json_too(cli: Any) -> None:
    out = cli("items", "show", "itm_missing", "--json")
    assert json.loads(out.stdout) == {
        "error": {
            "code": "not_found",
            "message": "no item 'itm_missing'",
            "hint": "list items with `sluice items list`",
        }
    }


def test_demo_json_report_has_the_promised_figures(
    cli: Any, tmp_path: Path, model_cache: Path, trained_intent_model: Any
) -> None:
    with Runtime(make_settings(tmp_path / "home", None, model_cache)) as rt:
        rt.models.register(
            trained_intent_model["name"],
            "classifier",
            trained_intent_model["artifact"],
            trained_intent_model["card"],
        )
    out = cli("demo", "support-triage", "--limit", "40", "--json")
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    for key in (
        "processed",
        "automation_rate",
        "auto_precision",
        "waiting_review",
        "latency_ms",
        "end_to_end_ms",
        "wall_seconds",
        "throughput_per_s",
    ):
        assert key in report, key
    assert report["processed"] == 40
    assert report["model"]["version"] == "1", "the identical trained model was reused"
    assert set(report["latency_ms"]["classify"]) == {"p50", "p95", "p99"}

    items = json.loads(cli("items", "list", "--json", "--limit", "100").stdout)
    assert len(items) == 40
    shown = json.loads(cli("items", "show", items[0]["id"], "--json").stdout)
    assert shown["event"]["source"].startswith("sluice-demo/")
    assert [s["step"] for s in shown["steps"]][:5] == [
        "classify",
        "prioritize",
        "retrieve",
        "screen",
        "draft_reply",
    ]
    assert report["knowledge"]["chunks"] > 0 and report["knowledge"]["failures"] == 0
    # The lineage names the knowledge version and the passages the reply drew on.
    lineage = cli("lineage", items[0]["id"])
    assert lineage.exit_code == 0, lineage.output
    assert "retrieve: knowledge default@v1 (hybrid), 4 passages" in lineage.stdout
    tasks = json.loads(cli("review", "list", "--json").stdout)
    gate = [t for t in tasks if t["kind"] == "gate"]
    assert len(gate) == report["waiting_review"]
    # The default 2% audit sample: the first auto-handled item of each intent, graded blind.
    audits = [t for t in tasks if t["kind"] == "audit"]
    assert audits and all("label" not in t["proposal"] for t in audits)
    assert len(audits) == len({t["stratum"] for t in audits})
    models = json.loads(cli("models", "list", "--json").stdout)
    # The trained classifiers (intent, injection screen), and the encoder the gateway
    # served, catalogued on first use.
    assert [(m["name"], m["kind"], m["stage"]) for m in models] == [
        ("minilm-l6-int8", "encoder", "production"),
        ("prompt-injection", "classifier", "production"),
        ("support-intent", "classifier", "production"),
    ]
