"""`sluice audit`, `sluice lineage` and `sluice tokens` from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sluice.cli.main import app


@pytest.fixture
def cli(tmp_path: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("SLUICE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SLUICE_MODEL_CACHE", str(model_cache))
    monkeypatch.setenv("SLUICE_LOCAL_ACTOR", "ana")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


@pytest.fixture
def submitted(cli: Any, tmp_path: Path) -> str:
    event = {"specversion": "1.0", "id": "a", "source": "cli", "type": "t", "data": {"text": "hi"}}
    events = tmp_path / "in.jsonl"
    events.write_text(json.dumps(event) + "\n")
    out = cli("submit", "support-triage", str(events), "--json")
    assert out.exit_code == 0, out.output
    return str(json.loads(out.stdout)["items"][0]["item_id"])


def test_verify_export_and_verify_the_export(cli: Any, submitted: str, tmp_path: Path) -> None:
    sealed = cli("audit", "checkpoint", "--json")
    assert sealed.exit_code == 0 and json.loads(sealed.stdout)["sealed"]
    report = json.loads(cli("audit", "verify", "--json").stdout)
    assert report["ok"] and report["checkpoints"] == 1 and report["unsealed"] == 1
    export = tmp_path / "audit.jsonl"
    assert cli("audit", "export", "-o", str(export)).exit_code == 0
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert [e["action"] for e in lines] == ["item.created", "audit.checkpoint"]
    assert cli("audit", "verify", "--file", str(export)).exit_code == 0
    lines[0]["details"]["source"] = "elsewhere"
    export.write_text("".join(json.dumps(e) + "\n" for e in lines))
    broken = cli("audit", "verify", "--file", str(export), "--json")
    assert broken.exit_code == 1
    assert json.loads(broken.stdout)["first_break"]["kind"] == "modified"


def test_verify_exits_1_on_a_tampered_store(cli: Any, submitted: str, tmp_path: Path) -> None:
    import sqlite3

    db = sqlite3.connect(tmp_path / "home" / "sluice.db")
    db.execute("DROP TRIGGER audit_log_no_update")
    db.execute("UPDATE audit_log SET actor = 'mallory'")
    db.commit()
    db.close()
    out = cli("audit", "verify")
    assert out.exit_code == 1 and "first break at seq 1: modified" in out.stdout


def test_lineage_of_a_queued_item(cli: Any, submitted: str) -> None:
    record = json.loads(cli("lineage", submitted, "--json").stdout)
    assert record["item"]["status"] == "queued" and record["intact"]
    assert record["event"]["audit"]["action"] == "item.created"
    missing = cli("lineage", "itm_nope")
    assert missing.exit_code == 1 and "no item 'itm_nope'" in missing.output


def test_tokens_create_list_revoke(cli: Any) -> None:
    made = cli(
        "tokens", "create", "--role", "reviewer", "--name", "bo", "--queue", "billing", "--json"
    )
    assert made.exit_code == 0, made.output
    token = json.loads(made.stdout)
    assert token["token"].startswith("slc_") and token["created_by"] == "cli:ana"
    listed = json.loads(cli("tokens", "list", "--json").stdout)
    assert [(t["id"], t["state"], t["queues"]) for t in listed] == [
        (token["id"], "active", ["billing"])
    ]
    assert "token" not in listed[0] and "token_hash" not in listed[0]
    assert cli("tokens", "revoke", token["id"]).exit_code == 0
    assert json.loads(cli("tokens", "list", "--json").stdout)[0]["state"] == "revoked"
    bad = cli("tokens", "create", "--role", "root")
    assert bad.exit_code == 1 and "unknown role" in bad.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["replay", "itm_x", "--prompt", "reply=2"], "prompts are not versioned yet"),
        (["replay", "itm_x", "--model", "support-intent"], "is not NAME=VERSION"),
        (["replay", "--since", "2026-01-01"], "--since needs --pipeline"),
        (["replay"], "name items to replay"),
        (["replay", "itm_nope"], "no item 'itm_nope'"),
    ],
)
def test_replay_refuses_what_it_cannot_do(cli: Any, args: list[str], message: str) -> None:
    out = cli(*args)
    assert out.exit_code == 1 and message in out.output, out.output


def test_replay_needs_the_models_it_replays_with(cli: Any, submitted: str) -> None:
    out = cli("replay", submitted)
    assert out.exit_code == 1
    assert "needs a trained 'support-intent' classifier" in out.output
    pinned = cli("replay", submitted, "--model", "support-intent=7")
    assert pinned.exit_code == 1 and "support-intent" in pinned.output
