"""What the prompt registry returns: versions, activations, proposals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

__all__ = ["PromptActivation", "PromptState", "PromptVersion", "Proposal"]

#: A version's place in its lifecycle (see :mod:`sluice.governance.prompts.registry`).
PromptState = Literal["proposed", "passed", "failed", "approved", "active", "retired"]


@dataclass(frozen=True)
class PromptVersion:
    """One stored version of a prompt.

    Attributes:
        name: The prompt's name.
        version: 1, 2, 3 ... per name.
        sha256: sha256 of ``content``.
        description: The front matter's description.
        content: The whole prompt file, canonical text.
        author: Who proposed it (an actor: ``cli:ana``, ``token:tok_...``).
        proposed_at: When.
        state: Its lifecycle state.
        evaluation: The latest evaluation's result (JSON), if any.
        evaluated_by: Who ran it.
        evaluated_at: When.
        approver: Who approved it (never the author).
        approved_at: When.
        cases: Its evaluation cases, as read when it was proposed.
    """

    name: str
    version: int
    sha256: str
    description: str
    content: str
    author: str
    proposed_at: datetime
    state: PromptState
    evaluation: dict[str, Any] | None
    evaluated_by: str | None
    evaluated_at: datetime | None
    approver: str | None
    approved_at: datetime | None
    cases: list[dict[str, Any]]

    @property
    def ref(self) -> str:
        """``name@vN``."""
        return f"{self.name}@v{self.version}"

    @property
    def passed(self) -> bool | None:
        """Whether its latest evaluation passed; None when it has none."""
        return None if self.evaluation is None else bool(self.evaluation.get("passed"))

    def to_dict(self, *, content: bool = True) -> dict[str, Any]:
        """JSON form (``content=False`` leaves the file text and cases out)."""
        out: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "sha256": self.sha256,
            "description": self.description,
            "state": self.state,
            "author": self.author,
            "proposed_at": self.proposed_at.isoformat(),
            "evaluation": self.evaluation,
            "evaluated_by": self.evaluated_by,
            "evaluated_at": self.evaluated_at and self.evaluated_at.isoformat(),
            "approver": self.approver,
            "approved_at": self.approved_at and self.approved_at.isoformat(),
        }
        if content:
            out |= {"content": self.content, "cases": self.cases}
        return out

    @classmethod
    def from_row(cls, row: Any) -> PromptVersion:
        """From a ``prompt_versions`` row."""
        return cls(
            name=row.name,
            version=int(row.version),
            sha256=row.sha256,
            description=row.description,
            content=row.content,
            author=row.author,
            proposed_at=row.proposed_at,
            state=row.state,
            evaluation=row.evaluation,
            evaluated_by=row.evaluated_by,
            evaluated_at=row.evaluated_at,
            approver=row.approver,
            approved_at=row.approved_at,
            cases=list(row.cases or []),
        )


@dataclass(frozen=True)
class PromptActivation:
    """One activation or rollback of a prompt (``previous``: the version it replaced)."""

    id: int
    name: str
    action: Literal["activate", "rollback"]
    version: int
    previous: int | None
    actor: str
    reason: str | None
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "id": self.id,
            "name": self.name,
            "action": self.action,
            "version": self.version,
            "previous": self.previous,
            "actor": self.actor,
            "reason": self.reason,
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_row(cls, row: Any) -> PromptActivation:
        """From a ``prompt_activations`` row."""
        return cls(
            id=int(row.id),
            name=row.name,
            action=row.action,
            version=int(row.version),
            previous=row.previous,
            actor=row.actor,
            reason=row.reason,
            at=row.at,
        )


@dataclass(frozen=True)
class Proposal:
    """What :meth:`~.registry.PromptRegistry.propose` did.

    Attributes:
        version: The version holding the content (new, or the one that already had it).
        created: False when a version with the same sha256 existed: nothing was stored.
    """

    version: PromptVersion
    created: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"created": self.created, "version": self.version.to_dict(content=False)}
