"""The prompt registry on both store backends: the two-person lifecycle, rollback, lineage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from sluice.config import Settings
from sluice.errors import (
    PermissionDeniedError,
    PromptApprovalError,
    PromptError,
    PromptNotFoundError,
    PromptRenderError,
)
from sluice.governance import Principal, iter_entries, verify
from sluice.governance.prompts import PromptRegistry
from sluice.governance.prompts.tables import prompt_versions
from sluice.store import Store, open_store

ANA = Principal("cli:ana", "admin")
BO = Principal("cli:bo", "admin")
OPERATOR = Principal("token:tok_op", "operator")
AUDITOR = Principal("token:tok_au", "auditor")

CASES = """
[[cases]]
name = "greets"
variables = { customer = "Ana", message = "Where is my parcel?" }
expect = { contains = ["GREETING Ana"], max_chars = 400 }
"""


def prompt_text(
    greeting: str = "Hello", *, cases: str = CASES, body: str = "", top: str = ""
) -> str:
    return (
        f'+++\nname = "greeter"\ndescription = "test prompt"\n{top}'
        "[variables.customer]\n[variables.message]\nuntrusted = true\n"
        f"{cases}+++\n"
        f"::: system\n{greeting.upper()} GREETING {{{{ customer }}}}. Answer briefly.{body}\n"
        "::: user\n{{ message }}\n"
    )


VARIABLES = {"customer": "Ana", "message": "hi"}


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    opened = open_store(settings)
    try:
        yield opened
    finally:
        opened.dispose()


@pytest.fixture
def registry(store: Store) -> PromptRegistry:
    return PromptRegistry(store)


def _released(registry: PromptRegistry, text: str, author: Principal = ANA) -> int:
    """Propose, evaluate, approve (by someone else) and activate; the version number."""
    version = registry.propose(text, author).version.version
    assert registry.evaluate("greeter", version, author).passed
    registry.approve("greeter", version, BO if author != BO else ANA)
    registry.activate("greeter", version, BO)
    return version


def test_the_lifecycle_needs_a_passing_evaluation_and_a_second_person(
    registry: PromptRegistry, store: Store
) -> None:
    proposal = registry.propose(prompt_text(), ANA)
    assert proposal.created and proposal.version.state == "proposed"
    v1 = proposal.version
    assert (v1.version, v1.author, v1.approver) == (1, "cli:ana", None)

    # Not evaluated: neither approval nor activation.
    with pytest.raises(PromptApprovalError, match="has not been evaluated"):
        registry.approve("greeter", 1, BO)
    with pytest.raises(PromptApprovalError, match="it is proposed, not approved"):
        registry.activate("greeter", 1, BO)

    result = registry.evaluate("greeter", 1, ANA)
    assert result.passed and result.summary == "1/1 cases passed"
    assert registry.get("greeter", 1).state == "passed"

    # Evaluated, but nobody else approved it.
    with pytest.raises(PromptApprovalError, match="it is passed, not approved"):
        registry.activate("greeter", 1, ANA)
    with pytest.raises(PromptApprovalError, match="cli:ana proposed greeter@v1 and cannot"):
        registry.approve("greeter", 1, ANA)
    assert registry.get("greeter", 1).state == "passed"
    with pytest.raises(PromptNotFoundError, match="no active version"):
        registry.render("greeter", VARIABLES)

    approved = registry.approve("greeter", 1, BO, note="read it")
    assert (approved.state, approved.approver) == ("approved", "cli:bo")
    with pytest.raises(PromptApprovalError, match="approved already"):
        registry.approve("greeter", 1, BO)
    active = registry.activate("greeter", 1, ANA, reason="first")
    assert active.state == "active"

    rendered = registry.render("greeter", VARIABLES)
    assert rendered.lineage() == {"prompt": "greeter", "version": 1, "sha256": v1.sha256}
    assert rendered.messages[0].content == "HELLO GREETING Ana. Answer briefly."
    assert rendered.messages[1].content == '<untrusted_data name="message">hi</untrusted_data>'

    with store.read() as conn:
        entries = [(e.actor, e.action, e.target) for e in iter_entries(conn)]
    assert verify(store).ok
    assert entries == [
        ("cli:ana", "prompt.proposed", "prompt:greeter@v1"),
        ("cli:ana", "prompt.evaluated", "prompt:greeter@v1"),
        ("cli:ana", "prompt.approval_refused", "prompt:greeter@v1"),
        ("cli:bo", "prompt.approved", "prompt:greeter@v1"),
        ("cli:ana", "prompt.activated", "prompt:greeter@v1"),
    ]


def test_a_failing_evaluation_blocks_approval(registry: PromptRegistry) -> None:
    failing = prompt_text(cases=CASES.replace("GREETING Ana", "GREETING Bob"))
    registry.propose(failing, ANA)
    result = registry.evaluate("greeter", 1, ANA)
    assert not result.passed and result.summary == "0/1 cases passed"
    record = registry.get("greeter", 1)
    assert record.state == "failed" and record.evaluation is not None
    assert record.evaluation["cases"][0]["checks"][2] == {
        "property": "contains",
        "expected": "GREETING Bob",
        "passed": False,
        "detail": "not found",
    }
    with pytest.raises(PromptApprovalError, match="its evaluation did not pass"):
        registry.approve("greeter", 1, BO)
    with pytest.raises(PromptApprovalError, match="it is failed, not approved"):
        registry.activate("greeter", 1, BO)


def test_a_prompt_without_cases_can_never_be_approved(registry: PromptRegistry) -> None:
    registry.propose(prompt_text(cases=""), ANA)
    assert not registry.evaluate("greeter", 1, ANA).passed
    with pytest.raises(PromptApprovalError):
        registry.approve("greeter", 1, BO)


def test_roles_decide_who_proposes_and_who_approves(registry: PromptRegistry, store: Store) -> None:
    with pytest.raises(PermissionDeniedError, match="may not prompts:propose"):
        registry.propose(prompt_text(), AUDITOR)
    registry.propose(prompt_text(), OPERATOR)  # operators propose and evaluate
    assert registry.evaluate("greeter", 1, OPERATOR).passed
    with pytest.raises(PermissionDeniedError, match="may not prompts:approve"):
        registry.approve("greeter", 1, Principal("token:tok_op2", "operator"))
    registry.approve("greeter", 1, ANA)  # an admin who is not the author
    with pytest.raises(PermissionDeniedError):
        registry.activate("greeter", 1, OPERATOR)
    with store.read() as conn:
        denied = [e.target for e in iter_entries(conn) if e.action == "access.denied"]
    assert denied == ["prompts:propose", "prompts:approve", "prompts:approve"]


def test_the_same_content_is_one_version(registry: PromptRegistry, tmp_path: Path) -> None:
    first = registry.propose(prompt_text(), ANA)
    again = registry.propose(prompt_text().replace("\n", "\r\n") + "\n", BO)
    assert not again.created and again.version == first.version
    assert again.version.author == "cli:ana"
    changed = registry.propose(prompt_text("Hi"), BO)
    assert changed.created and changed.version.version == 2
    assert changed.version.sha256 != first.version.sha256
    diff = registry.diff("greeter", 1, 2)
    assert "-HELLO GREETING {{ customer }}" in diff and "+HI GREETING {{ customer }}" in diff
    assert diff.startswith("--- greeter@v1 (proposed, sha256 ")
    assert registry.diff("greeter", 2, 2) == ""
    assert [v.version for v in registry.list()] == [2, 1]
    assert registry.list("nothing") == []


def test_a_file_is_proposed_with_its_evaluation_file(
    registry: PromptRegistry, tmp_path: Path
) -> None:
    (tmp_path / "greeter.cases.toml").write_text(CASES)
    path = tmp_path / "greeter.prompt"
    path.write_text(prompt_text(cases="", top='evaluation = "greeter.cases.toml"\n'))
    version = registry.propose(path, ANA).version
    assert version.cases[0]["name"] == "greets"
    assert registry.evaluate("greeter", 1, ANA).passed
    # The cases were kept when it was proposed: the file going away changes nothing.
    (tmp_path / "greeter.cases.toml").unlink()
    assert registry.evaluate("greeter", 1, ANA).passed
    with pytest.raises(PromptError, match="cannot read its evaluation file"):
        registry.propose(tmp_path / "greeter.prompt", ANA)


def test_rollback_walks_back_through_the_activations(
    registry: PromptRegistry, store: Store
) -> None:
    with pytest.raises(PromptApprovalError, match="no earlier active version"):
        registry.rollback("greeter", BO)
    sha = {}
    for n, greeting in enumerate(("One", "Two", "Three"), 1):
        assert _released(registry, prompt_text(greeting)) == n
        sha[n] = registry.get("greeter", n).sha256
        assert registry.render("greeter", VARIABLES).lineage()["version"] == n
    assert [v.state for v in registry.list("greeter")] == ["active", "retired", "retired"]
    with pytest.raises(PromptApprovalError, match="already active"):
        registry.activate("greeter", 3, BO)

    back = registry.rollback("greeter", BO, reason="v3 is too curt")
    assert back.version == 2 and back.state == "active"
    assert registry.get("greeter", 3).state == "retired"
    assert registry.render("greeter", VARIABLES).lineage() == {
        "prompt": "greeter",
        "version": 2,
        "sha256": sha[2],
    }
    assert registry.rollback("greeter", BO).version == 1
    with pytest.raises(PromptApprovalError, match="no earlier active version"):
        registry.rollback("greeter", BO)
    assert registry.render("greeter", VARIABLES).messages[0].content.startswith("ONE")

    # A retired version was approved before: it can be activated again, by number.
    assert registry.activate("greeter", 3, BO).state == "active"
    history = [(h.action, h.version, h.previous) for h in registry.history("greeter")]
    assert history == [
        ("activate", 1, None),
        ("activate", 2, 1),
        ("activate", 3, 2),
        ("rollback", 2, 3),
        ("rollback", 1, 2),
        ("activate", 3, 1),
    ]
    with store.read() as conn:
        rolled = [e.details_dict() for e in iter_entries(conn) if e.action == "prompt.rolled_back"]
    assert [r["previous"] for r in rolled] == ["greeter@v3", "greeter@v2"]
    assert rolled[0]["reason"] == "v3 is too curt"


def test_a_template_reaching_for_internals_fails_its_evaluation(
    registry: PromptRegistry,
) -> None:
    registry.propose(prompt_text(body=" {{ customer.__class__.__mro__ }}"), ANA)
    result = registry.evaluate("greeter", 1, ANA)
    assert not result.passed
    check = result.cases[0].checks[0]
    assert check.property == "rendered" and "sandbox refused" in check.detail
    with pytest.raises(PromptApprovalError):
        registry.approve("greeter", 1, BO)


def test_render_errors_reach_the_caller(registry: PromptRegistry) -> None:
    _released(registry, prompt_text())
    with pytest.raises(PromptRenderError, match="needs variable"):
        registry.render("greeter", {"customer": "Ana"})
    with pytest.raises(PromptRenderError, match="stray untrusted_data"):
        registry.render("greeter", {"customer": "</untrusted_data>", "message": "m"})
    with pytest.raises(PromptNotFoundError, match="no prompt version greeter@v9"):
        registry.get("greeter", 9)


def test_a_changed_stored_version_is_refused(registry: PromptRegistry, store: Store) -> None:
    _released(registry, prompt_text())
    with store.begin() as conn:
        conn.execute(
            update(prompt_versions).values(
                content=prompt_text().replace("Answer briefly.", "Promise refunds.")
            )
        )
    with pytest.raises(PromptError, match="does not match its sha256"):
        registry.render("greeter", VARIABLES)


def test_evaluating_with_a_model_and_after_approval(registry: PromptRegistry) -> None:
    cases = CASES.replace("max_chars = 400", 'max_chars = 400, output_matches = ["parcel"]')
    registry.propose(prompt_text(cases=cases), ANA)
    asked: list[str] = []

    def model(rendered: object) -> str:
        asked.append(getattr(rendered, "text", ""))
        return "Your parcel is on its way."

    result = registry.evaluate("greeter", 1, ANA, model=model)
    assert result.passed and result.with_model and result.skipped == 0
    assert asked and "Where is my parcel?" in asked[0]
    registry.approve("greeter", 1, BO)
    # A later evaluation (say, with another model) is returned but does not replace the
    # one the approval rests on.
    late = registry.evaluate("greeter", 1, ANA, model=lambda r: "no idea")
    assert not late.passed
    record = registry.get("greeter", 1)
    assert record.state == "approved" and record.evaluation is not None
    assert record.evaluation["passed"] is True
