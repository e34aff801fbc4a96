"""`sluice prompts` on both store backends: two people release the shipped prompt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sluice.cli.main import app

SHIPPED = (
    Path(__file__).parents[2] / "src/sluice/pipelines/support_triage/prompts/draft_reply.prompt"
)
NAME = "support-triage.draft-reply"


@pytest.fixture
def cli(
    tmp_path: Path, database_url: str | None, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """``cli(*args, actor="ana")``: the CLI acting as the local admin named ``actor``."""
    monkeypatch.setenv("SLUICE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SLUICE_MODEL_CACHE", str(model_cache))
    if database_url is not None:
        monkeypatch.setenv("SLUICE_DATABASE_URL", database_url)
    runner = CliRunner()

    def invoke(*args: str, actor: str = "ana") -> Any:
        return runner.invoke(app, list(args), env={"SLUICE_LOCAL_ACTOR": actor})

    return invoke


def _flat(out: Any) -> str:
    """The output on one line (Rich wraps long lines at the terminal width)."""
    return " ".join(out.output.split())


def _json(out: Any, code: int = 0) -> Any:
    assert out.exit_code == code, out.output
    return json.loads(out.stdout)


@pytest.fixture
def edited(tmp_path: Path) -> Path:
    """A second version of the shipped prompt: one sentence more (its cases still pass)."""
    folder = tmp_path / "prompts"
    folder.mkdir()
    for file in SHIPPED.parent.iterdir():
        (folder / file.name).write_text(file.read_text())
    path = folder / SHIPPED.name
    path.write_text(path.read_text().replace("::: user\n", "Be warm.\n::: user\n"))
    return path


def test_help_teaches_with_examples(cli: Any) -> None:
    out = cli("prompts", "--help")
    for command in ("list", "show", "diff", "propose", "evaluate", "approve", "activate",
                    "rollback"):  # fmt: skip
        assert command in out.output
    assert (
        "sluice prompts approve support-triage.draft-reply 2"
        in cli("prompts", "approve", "--help").output
    )
    assert "Its author cannot approve it" in cli("prompts", "approve", "--help").output


def test_two_people_release_and_roll_back_the_shipped_prompt(cli: Any, edited: Path) -> None:
    proposed = _json(cli("prompts", "propose", str(SHIPPED), "--json"))
    assert proposed["created"] and proposed["version"]["ref"] == f"{NAME}@v1"
    again = _json(cli("prompts", "propose", str(SHIPPED), "--json", actor="bo"))
    assert not again["created"] and again["version"]["author"] == "cli:ana"

    refused = _json(cli("prompts", "activate", NAME, "1", "--json", actor="bo"), code=1)
    assert refused["error"]["code"] == "prompt_approval_refused"
    assert "not approved" in refused["error"]["message"]

    evaluation = _json(cli("prompts", "evaluate", NAME, "v1", "--json"))
    assert evaluation["passed"] and evaluation["skipped"] == 1  # the output check
    assert {c["name"] for c in evaluation["cases"]} >= {"no passages found"}

    mine = _json(cli("prompts", "approve", NAME, "1", "--json"), code=1)
    assert mine["error"]["code"] == "prompt_approval_refused"
    assert "cli:ana proposed" in mine["error"]["message"]
    text = cli("prompts", "approve", NAME, "1")
    assert text.exit_code == 1 and "a second person must" in _flat(text)

    approved = _json(cli("prompts", "approve", NAME, "1", "--json", actor="bo"))
    assert (approved["state"], approved["approver"]) == ("approved", "cli:bo")
    active = _json(cli("prompts", "activate", NAME, f"{NAME}@v1", "--json", actor="bo"))
    assert active == {"active": active["active"], "previous": None}
    assert active["active"]["state"] == "active"

    # Version 2, proposed by bo, approved by ana.
    assert _json(cli("prompts", "propose", str(edited), "--json", actor="bo"))["created"]
    assert cli("prompts", "evaluate", NAME, "2", actor="bo").exit_code == 0
    assert cli("prompts", "approve", NAME, "2", actor="bo").exit_code == 1
    assert cli("prompts", "approve", NAME, "2", "--note", "fine").exit_code == 0
    switched = cli("prompts", "activate", NAME, "2", "--reason", "warmer")
    assert switched.exit_code == 0 and "v1 is retired" in _flat(switched)

    diff = _json(cli("prompts", "diff", NAME, "1", "2", "--json"))
    assert "+Be warm." in diff["diff"]
    listed = _json(cli("prompts", "list", "--json"))
    assert [(v["ref"], v["state"]) for v in listed] == [
        (f"{NAME}@v2", "active"),
        (f"{NAME}@v1", "retired"),
    ]

    back = cli("prompts", "rollback", NAME, "--reason", "too warm")
    assert back.exit_code == 0 and f"{NAME}@v1 is active again (v2 is retired)" in _flat(back)
    shown = _json(cli("prompts", "show", NAME, "--json"))
    assert shown["version"]["version"] == 1 and shown["version"]["content"].startswith("+++\n")
    assert [(h["action"], h["version"]) for h in shown["history"]] == [
        ("activate", 1),
        ("activate", 2),
        ("rollback", 1),
    ]
    human = cli("prompts", "show", NAME)
    assert human.exit_code == 0 and "::: system" in human.output
    assert "rollback v1 (was v2) by cli:ana: too warm" in _flat(human)


def test_a_failing_evaluation_exits_1(cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "bad.prompt"
    path.write_text(
        '+++\nname = "bad"\n[variables.x]\n[[cases]]\nname = "c"\nvariables = { x = "a" }\n'
        'expect = { contains = ["b"] }\n+++\n{{ x }}\n'
    )
    assert cli("prompts", "propose", str(path)).exit_code == 0
    out = cli("prompts", "evaluate", "bad", "1")
    assert out.exit_code == 1 and "0/1 cases passed" in _flat(out) and "FAIL" in out.output
    shown = _json(cli("prompts", "show", "bad", "1", "--json"))
    assert shown["version"]["state"] == "failed"


def test_errors_say_what_to_do(cli: Any, tmp_path: Path) -> None:
    missing = cli("prompts", "show", "nothing")
    assert missing.exit_code == 1 and "has no active version" in _flat(missing)
    bad = tmp_path / "bad.prompt"
    bad.write_text('+++\nname = "x"\n+++\n{{ secret }}\n')
    out = _json(cli("prompts", "propose", str(bad), "--json"), code=1)
    assert out["error"]["code"] == "prompt_render_error"
    assert "undeclared variable(s) secret" in out["error"]["message"]
    version = cli("prompts", "diff", "x", "one", "2")
    assert version.exit_code == 1 and "'one' is not a version number" in _flat(version)
