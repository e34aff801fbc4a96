"""`sluice models show|evaluate|promote|rollback|retire` from the command line.

Runs on both store backends: the CLI gets the test's database through
SLUICE_DATABASE_URL. The candidate is the production artifact registered again: as good
as production, so the gate passes, and no training is needed.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from helpers import make_settings
from sluice.cli.main import app
from sluice.pipelines.support_triage import MODEL_NAME, sample_path
from sluice.runtime import Runtime


@pytest.fixture
def cli(
    tmp_path: Path, database_url: str | None, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    monkeypatch.setenv("SLUICE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SLUICE_MODEL_CACHE", str(model_cache))
    monkeypatch.setenv("SLUICE_LOCAL_ACTOR", "ana")
    if database_url is not None:
        monkeypatch.setenv("SLUICE_DATABASE_URL", database_url)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


@pytest.fixture
def two_versions(
    tmp_path: Path, database_url: str | None, model_cache: Path, trained_intent_model: Any
) -> None:
    """support-intent@1 in production and @2 (the same weights) as a candidate."""
    with Runtime(make_settings(tmp_path / "home", database_url, model_cache)) as rt:
        for promote in (None, False):
            rt.models.register(
                MODEL_NAME,
                "classifier",
                trained_intent_model["artifact"],
                trained_intent_model["card"],
                promote=promote,
            )


@pytest.fixture
def small_holdout(tmp_path: Path) -> Path:
    """80 rows of the sample's test set: enough for the gate, quick to encode."""
    with sample_path("test.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[:80]
    path = tmp_path / "holdout.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "category"])
        writer.writeheader()
        writer.writerows({"text": r["text"], "category": r["category"]} for r in rows)
    return path


def _json(out: Any) -> Any:
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


def test_help_names_the_stage_commands(cli: Any) -> None:
    out = cli("models", "--help")
    for command in ("show", "evaluate", "promote", "rollback", "retire"):
        assert command in out.output
    assert "passing evaluation" in cli("models", "promote", "--help").output


def test_evaluate_promote_show_and_roll_back(
    cli: Any, two_versions: None, small_holdout: Path
) -> None:
    refused = cli("models", "promote", MODEL_NAME, "2", "--json")
    assert refused.exit_code == 1
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "promotion_refused" and "has no evaluation" in error["message"]
    assert f"sluice models evaluate {MODEL_NAME} 2" in error["hint"]

    evaluation = _json(
        cli("models", "evaluate", MODEL_NAME, "2", "--holdout", str(small_holdout), "--json")
    )
    assert evaluation["passed"] and evaluation["baseline_version"] == "1"
    assert evaluation["created_by"] == "cli:ana"
    gate = evaluation["metrics"]["gate"]
    assert gate["candidate_precision"] == gate["production_precision"]
    assert evaluation["metrics"]["holdout_rows"] == 80

    canary = _json(
        cli("models", "promote", MODEL_NAME, "2", "--to", "canary", "--reason", "try", "--json")
    )
    assert canary["stage"] == "canary"
    listed = _json(cli("models", "list", "--json"))
    assert [(m["version"], m["stage"]) for m in listed] == [("2", "canary"), ("1", "production")]

    shown = _json(cli("models", "show", MODEL_NAME, "--json"))
    assert shown["model"]["version"] == "1"
    assert shown["serving"] == {"production": "1", "canary": "2"}
    assert [(h["version"], h["to_stage"], h["actor"]) for h in shown["history"]] == [
        ("1", "production", "local-admin"),
        ("2", "candidate", "local-admin"),
        ("2", "canary", "cli:ana"),
    ]
    assert shown["evaluations"] == []
    second = _json(cli("models", "show", MODEL_NAME, "2", "--json"))
    assert [e["id"] for e in second["evaluations"]] == [evaluation["id"]]
    assert second["history"][-1]["evaluation_id"] == evaluation["id"]
    assert second["history"][-1]["reason"] == "try"

    assert _json(cli("models", "promote", MODEL_NAME, "2", "--json"))["stage"] == "production"
    rolled = _json(cli("models", "rollback", MODEL_NAME, "--reason", "complaints", "--json"))
    assert (rolled["retired"]["version"], rolled["production"]["version"]) == ("2", "1")
    assert rolled["production"]["stage"] == "production"

    again = cli("models", "retire", MODEL_NAME, "2")
    assert again.exit_code == 1 and "already retired" in again.stderr
    bad = cli("models", "promote", MODEL_NAME, "2", "--to", "retired")
    assert bad.exit_code != 0


def test_text_output_explains_the_gate_and_the_stages(
    cli: Any, two_versions: None, small_holdout: Path
) -> None:
    out = cli("models", "evaluate", MODEL_NAME, "2", "--holdout", str(small_holdout))
    assert out.exit_code == 0, out.output
    assert "promotion gate passes" in out.stdout
    assert f"sluice models promote {MODEL_NAME} 2" in out.stdout
    out = cli("models", "promote", MODEL_NAME, "2", "--to", "canary")
    assert out.exit_code == 0 and f"{MODEL_NAME}@2 is now canary" in out.stdout
    shown = cli("models", "show", MODEL_NAME, "2")
    assert shown.exit_code == 0, shown.output
    assert f"serving: production {MODEL_NAME}@1, canary {MODEL_NAME}@2" in shown.stdout
    assert "passed" in shown.stdout
    retired = cli("models", "retire", MODEL_NAME, "2", "--reason", "stop the canary")
    assert retired.exit_code == 0 and "is retired" in retired.stdout
    out = cli("models", "rollback", MODEL_NAME)
    assert out.exit_code == 1 and "no production version" in out.stderr
