"""`sluice kb` on both store backends: the demo knowledge base, end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sluice.cli.main import app
from sluice.pipelines.support_triage import sample_path

KB = sample_path("kb")


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


def _json(out: Any, code: int = 0) -> Any:
    assert out.exit_code == code, out.output
    return json.loads(out.stdout)


def test_help_teaches_with_examples(cli: Any) -> None:
    out = cli("kb", "--help")
    for command in ("ingest", "search", "versions", "activate", "rollback", "stats", "build"):
        assert command in out.output
    assert "sluice kb search" in cli("kb", "search", "--help").output
    assert "--filter product=logistics" in cli("kb", "search", "--help").output
    assert "--meta product=billing" in cli("kb", "ingest", "--help").output


def test_the_demo_knowledge_base_end_to_end(cli: Any) -> None:
    report = _json(cli("kb", "ingest", str(KB), "--exclude", "README.md", "--json"))
    assert report["created_version"] == "default@v1"
    assert report["new"] == 40 and report["failures"] == [] and report["chunks"] > 40
    again = _json(cli("kb", "ingest", str(KB), "--exclude", "README.md", "--json"))
    assert (again["new"], again["changed"], again["unchanged"], again["chunks"]) == (0, 0, 40, 0)

    found = _json(
        cli("kb", "search", "my parcel has not moved for a week", "--filter", "product=logistics",
            "-k", "3", "--json")
    )  # fmt: skip
    assert found["index_version"] == "default@v1" and len(found["hits"]) == 3
    for hit in found["hits"]:
        assert hit["metadata"]["product"] == "logistics"
        citation = hit["citation"]
        assert citation["index_version"] == "default@v1"
        assert citation["end"] - citation["start"] == len(hit["text"])
        assert citation["source"].startswith("file://")
    assert any("delivery-delays.md" in h["citation"]["source"] for h in found["hits"])

    text = cli("kb", "search", "charged twice", "--mode", "bm25")
    assert text.exit_code == 0, text.output
    assert "default@v1" in text.output and "double-charges.md" in text.output

    built = _json(cli("kb", "build", "--max-tokens", "60", "--overlap", "10", "--json"))
    assert (built["ref"], built["status"]) == ("default@v2", "ready")
    switched = _json(cli("kb", "activate", "v2", "--reason", "shorter chunks", "--json"))
    assert switched == {"active": switched["active"], "previous": "default@v1"}
    assert _json(cli("kb", "search", "refund", "--json"))["index_version"] == "default@v2"
    listed = _json(cli("kb", "versions", "--json"))
    assert [(v["ref"], v["status"]) for v in listed["versions"]] == [
        ("default@v1", "retired"),
        ("default@v2", "active"),
    ]
    back = cli("kb", "rollback", "--reason", "compare later")
    assert back.exit_code == 0 and "default@v1 is active again" in back.output
    stats = _json(cli("kb", "stats", "--json"))
    assert stats["documents"] == 40 and stats["active"] == "default@v1"
    assert cli("kb", "stats").exit_code == 0


def test_a_bad_file_is_listed_and_the_rest_ingested(cli: Any, tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "good.md").write_text("# Hours\n\nThe help desk opens at 8 am.")
    (folder / "bad.pdf").write_bytes(b"not a pdf")
    out = cli("kb", "ingest", str(folder), "--meta", "team=desk")
    assert out.exit_code == 1
    assert "bad.pdf" in out.output and "everything else was ingested" in out.output
    found = _json(cli("kb", "search", "help desk", "--mode", "bm25", "--filter", "team=desk",
                      "--json"))  # fmt: skip
    assert found["hits"][0]["citation"]["title"] == "Hours"


def test_a_folder_ingested_as_its_own_root_prunes_nothing_else(cli: Any, tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "hours.md").write_text("# Hours\n\nThe help desk opens at 8 am.")
    (folder / "returns.md").write_text("# Returns\n\nPrint the label and drop the box off.")
    first = _json(cli("kb", "ingest", str(KB), "--exclude", "README.md", "--json"))
    assert first["new"] == 40
    rooted = _json(cli("kb", "ingest", f"{folder}/", "--root", f"{folder}/", "--json"))
    assert (rooted["new"], rooted["removed"]) == (2, 0)
    (folder / "returns.md").unlink()
    again = _json(cli("kb", "ingest", f"{folder}/", "--root", f"{folder}/", "--json"))
    assert again["removed"] == 1
    assert _json(cli("kb", "stats", "--json"))["documents"] == 41


def test_mistakes_are_one_clear_line(cli: Any) -> None:
    out = cli("kb", "search", "anything", "--mode", "bm25")
    assert out.exit_code == 1 and "nothing was ingested yet" in out.output
    bad = cli("kb", "search", "x", "--filter", "product", "--json")
    assert bad.exit_code == 1 and json.loads(bad.stdout)["error"]["code"] == "invalid_filter"
    assert cli("kb", "ingest", ".", "--meta", "oops").exit_code == 1
    assert "not a version number" in cli("kb", "activate", "latest").output
