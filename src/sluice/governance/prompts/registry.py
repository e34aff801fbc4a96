"""The prompt registry: propose, evaluate, approve, activate, roll back, and render.

A prompt's versions live in the store (:mod:`.tables`), so every worker renders the
exact text that was approved. Their life::

    proposed --evaluate--> passed | failed          (evaluate again at will)
    passed --approve, by someone who is not the author--> approved
    approved --activate--> active --(another is activated, or a rollback)--> retired
    retired --activate | rollback--> active

The rules, each enforced here whatever edge calls (CLI, API, a script):

- :meth:`~PromptRegistry.propose` (``prompts:propose``) stores the file's canonical
  content and its evaluation cases as a new version (1, 2, 3 ... per name). Content
  with the sha256 of an existing version of that name stores nothing and returns it.
- :meth:`~PromptRegistry.evaluate` (``prompts:propose``) runs the cases kept with the
  version (:mod:`.evaluation`) and moves a proposed, passed or failed version to
  ``passed`` or ``failed``. An approved, active or retired version can be evaluated
  too (say, with a model): the result is returned and audited, and the evaluation its
  approval rests on stays as it was.
- :meth:`~PromptRegistry.approve` (``prompts:approve``) needs a ``passed`` version and
  an approver who is not its author; a self-approval is refused and audited
  (``prompt.approval_refused``). Identity is the actor: ``cli:<user>`` or
  ``token:<id>``.
- :meth:`~PromptRegistry.activate` (``prompts:approve``) needs an approved version
  (or a retired one, which was approved before it served); the active one is retired.
- :meth:`~PromptRegistry.rollback` (``prompts:approve``) restores the version that was
  active before the current one. Activations form a stack: each activation pushes a
  version, each rollback pops one, so rolling back twice walks further back.
- :meth:`~PromptRegistry.render` renders the active version; it needs no permission
  (workers render) and reads the store once.

Every change is its row change plus one audit entry (target ``prompt:NAME@vN``) in one
transaction; changes to one name are serialized (an advisory lock on PostgreSQL, the
write lock on SQLite).

Example:
    >>> registry = PromptRegistry(store)  # doctest: +SKIP
    >>> v = registry.propose(Path("draft_reply.prompt"), ana).version  # doctest: +SKIP
    >>> registry.evaluate(v.name, v.version, ana).passed  # doctest: +SKIP
    True
    >>> registry.approve(v.name, v.version, bo)  # doctest: +SKIP
    >>> registry.activate(v.name, v.version, bo)  # doctest: +SKIP
    >>> registry.render(v.name, {"intent": "refund_status", ...}).lineage()  # doctest: +SKIP
    {'prompt': 'support-triage.draft-reply', 'version': 1, 'sha256': '...'}
"""

from __future__ import annotations

import builtins
import difflib
import functools
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, func, select, text, update

from sluice.errors import PromptApprovalError, PromptError, PromptNotFoundError
from sluice.governance.audit import AuditEvent, append
from sluice.governance.prompts.cases import parse_cases
from sluice.governance.prompts.evaluation import EvaluationResult, ModelHook, evaluate_prompt
from sluice.governance.prompts.prompt_file import PromptFile, load_prompt, parse_prompt
from sluice.governance.prompts.records import PromptActivation, PromptVersion, Proposal
from sluice.governance.prompts.rendering import RenderedPrompt, render_prompt
from sluice.governance.prompts.tables import prompt_activations, prompt_versions
from sluice.governance.rbac import Principal, authorize
from sluice.store import Store, utcnow

__all__ = ["PromptRegistry"]

# Mixed into the PostgreSQL advisory lock key of a prompt name; keep as first chosen.
_LOCK_SALT = b"sluice.governance.prompts:"
_EVALUABLE = ("proposed", "passed", "failed")


def _lock(conn: Connection, name: str) -> None:
    """Serialize lifecycle changes of ``name`` until the transaction ends."""
    if conn.dialect.name == "postgresql":
        key = int.from_bytes(
            hashlib.sha256(_LOCK_SALT + name.encode()).digest()[:8], "big", signed=True
        )
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
    # SQLite: the store's write transactions already run one at a time.


def _ref(name: str, version: int) -> str:
    return f"{name}@v{version}"


def _not_found(name: str, version: int | None) -> PromptNotFoundError:
    if version is None:
        return PromptNotFoundError(
            f"prompt {name!r} has no active version",
            hint=f"list its versions with `sluice prompts list --name {name}`; one must be "
            "evaluated, approved by a second person and activated",
        )
    return PromptNotFoundError(
        f"no prompt version {_ref(name, version)}",
        hint="list prompts and versions with `sluice prompts list`",
    )


@functools.lru_cache(maxsize=128)
def _parse_stored(content: str, sha256: str, ref: str) -> PromptFile:
    """A stored version's file, parsed (cached: versions never change)."""
    prompt = parse_prompt(content, source=ref, load_cases=False)
    if prompt.sha256 != sha256:
        raise PromptError(
            f"{ref}: its stored content does not match its sha256 ({sha256[:12]})",
            hint="the store was changed behind the registry's back: check `sluice audit "
            "verify`, then propose the file again",
        )
    return prompt


def stack_after(history: Sequence[tuple[str, int]]) -> builtins.list[int]:
    """The versions a rollback walks back through, newest last.

    >>> stack_after([("activate", 1), ("activate", 2), ("activate", 3), ("rollback", 2)])
    [1, 2]
    """
    stack: builtins.list[int] = []
    for action, version in history:
        if action == "activate":
            stack.append(version)
        elif stack:
            stack.pop()
    return stack


class PromptRegistry:
    """Versioned prompt templates with an audited, two-person lifecycle (module docs).

    Args:
        store: The store its tables live in.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- reading -------------------------------------------------------------------------
    def get(self, name: str, version: int | None = None) -> PromptVersion:
        """``name`` at ``version``, or its active version when omitted.

        Raises:
            PromptNotFoundError: No such version (or no active one).
        """
        with self.store.read() as conn:
            row = self._row(conn, name, version)
        if row is None:
            raise _not_found(name, version)
        return PromptVersion.from_row(row)

    def list(self, name: str | None = None) -> builtins.list[PromptVersion]:
        """Every version (of ``name`` if given): by name, newest version first."""
        query = select(prompt_versions).order_by(
            prompt_versions.c.name, prompt_versions.c.version.desc()
        )
        if name is not None:
            query = query.where(prompt_versions.c.name == name)
        with self.store.read() as conn:
            return [PromptVersion.from_row(r) for r in conn.execute(query)]

    def history(self, name: str) -> builtins.list[PromptActivation]:
        """The activations and rollbacks of ``name``, oldest first."""
        with self.store.read() as conn:
            return self._history(conn, name)

    def prompt(self, name: str, version: int | None = None) -> PromptFile:
        """The parsed file of ``name@version`` (the active version when omitted).

        Raises:
            PromptNotFoundError: No such version.
            PromptError: Its stored content does not match its sha256.
        """
        record = self.get(name, version)
        return _parse_stored(record.content, record.sha256, record.ref)

    def diff(self, name: str, a: int, b: int) -> str:
        """A unified diff from ``name@va`` to ``name@vb`` (empty when they are equal).

        Raises:
            PromptNotFoundError: Either version does not exist.
        """
        old, new = self.get(name, a), self.get(name, b)
        return "".join(
            difflib.unified_diff(
                old.content.splitlines(keepends=True),
                new.content.splitlines(keepends=True),
                fromfile=f"{old.ref} ({old.state}, sha256 {old.sha256[:12]})",
                tofile=f"{new.ref} ({new.state}, sha256 {new.sha256[:12]})",
            )
        )

    def render(self, name: str, variables: Mapping[str, Any]) -> RenderedPrompt:
        """Render the active version of ``name`` (one read of the store).

        Returns:
            The rendered prompt; its :meth:`~RenderedPrompt.lineage` names the version.

        Raises:
            PromptNotFoundError: ``name`` has no active version.
            PromptRenderError: The variables do not fit, or the template fails.
        """
        with self.store.read() as conn:
            row = conn.execute(
                select(
                    prompt_versions.c.version, prompt_versions.c.sha256, prompt_versions.c.content
                ).where(prompt_versions.c.name == name, prompt_versions.c.state == "active")
            ).one_or_none()
        if row is None:
            raise _not_found(name, None)
        version = int(row.version)
        prompt = _parse_stored(row.content, row.sha256, _ref(name, version))
        return render_prompt(prompt, variables, version=version)

    # -- lifecycle -----------------------------------------------------------------------
    def propose(
        self, source: Path | str, actor: Principal, *, base_dir: Path | None = None
    ) -> Proposal:
        """Store a prompt file as a new version of its prompt (module docs).

        Args:
            source: A path to the file, or its text.
            actor: Who proposes it (needs ``prompts:propose``); recorded as the author.
            base_dir: For text: the folder its ``evaluation`` path is relative to.

        Raises:
            PermissionDeniedError: ``actor`` may not propose prompts.
            PromptError: The file cannot be read or parsed.
            PromptRenderError: Its template does not compile or reads undeclared variables.
        """
        authorize(self.store, actor, "prompts:propose")
        if isinstance(source, Path):
            prompt = load_prompt(source)
        else:
            prompt = parse_prompt(source, base_dir=base_dir)
        with self.store.begin() as conn:
            _lock(conn, prompt.name)
            existing = conn.execute(
                select(prompt_versions).where(
                    prompt_versions.c.name == prompt.name,
                    prompt_versions.c.sha256 == prompt.sha256,
                )
            ).one_or_none()
            if existing is not None:
                return Proposal(PromptVersion.from_row(existing), created=False)
            number = 1 + (
                conn.execute(
                    select(func.max(prompt_versions.c.version)).where(
                        prompt_versions.c.name == prompt.name
                    )
                ).scalar()
                or 0
            )
            conn.execute(
                prompt_versions.insert().values(
                    name=prompt.name,
                    version=number,
                    sha256=prompt.sha256,
                    description=prompt.description,
                    content=prompt.content,
                    cases=[c.to_dict() for c in prompt.cases],
                    author=actor.actor,
                    proposed_at=utcnow(),
                    state="proposed",
                )
            )
            append(
                conn,
                [
                    AuditEvent(
                        actor.actor,
                        "prompt.proposed",
                        f"prompt:{_ref(prompt.name, number)}",
                        {
                            "sha256": prompt.sha256,
                            "cases": len(prompt.cases),
                            "evaluation": prompt.evaluation,
                            "untrusted": list(prompt.untrusted),
                        },
                    )
                ],
            )
        return Proposal(self.get(prompt.name, number), created=True)

    def evaluate(
        self, name: str, version: int, actor: Principal, *, model: ModelHook | None = None
    ) -> EvaluationResult:
        """Run the version's evaluation cases and record the result (module docs).

        Args:
            name: The prompt.
            version: Its version.
            actor: Who runs it (needs ``prompts:propose``).
            model: A model for the output checks (the rendered prompt in, text out);
                without one they are skipped and counted in the result.

        Raises:
            PermissionDeniedError: ``actor`` may not evaluate prompts.
            PromptNotFoundError: No such version.
        """
        authorize(self.store, actor, "prompts:propose")
        record = self.get(name, version)
        prompt = _parse_stored(record.content, record.sha256, record.ref)
        cases = parse_cases(record.cases, source=f"{record.ref} (its stored cases)")
        # Outside any transaction: a model may take its time.
        result = evaluate_prompt(prompt, cases, model=model, version=version)
        with self.store.begin() as conn:
            _lock(conn, name)
            state = conn.execute(
                select(prompt_versions.c.state).where(
                    prompt_versions.c.name == name, prompt_versions.c.version == version
                )
            ).scalar_one()
            recorded = state in _EVALUABLE
            if recorded:
                conn.execute(
                    update(prompt_versions)
                    .where(prompt_versions.c.name == name, prompt_versions.c.version == version)
                    .values(
                        state="passed" if result.passed else "failed",
                        evaluation=result.to_dict(),
                        evaluated_by=actor.actor,
                        evaluated_at=utcnow(),
                    )
                )
            append(
                conn,
                [
                    AuditEvent(
                        actor.actor,
                        "prompt.evaluated",
                        f"prompt:{record.ref}",
                        {
                            "passed": result.passed,
                            "summary": result.summary,
                            "cases_sha256": result.cases_sha256,
                            "with_model": result.with_model,
                            "recorded": recorded,
                        },
                    )
                ],
            )
        return result

    def approve(
        self, name: str, version: int, actor: Principal, *, note: str | None = None
    ) -> PromptVersion:
        """Approve a version whose evaluation passed; the author may not (module docs).

        Raises:
            PermissionDeniedError: ``actor`` lacks ``prompts:approve``.
            PromptNotFoundError: No such version.
            PromptApprovalError: ``actor`` is its author, or it is not ``passed``.
        """
        authorize(self.store, actor, "prompts:approve")
        record = self.get(name, version)
        if record.author == actor.actor:
            with self.store.begin() as conn:
                append(
                    conn,
                    [
                        AuditEvent(
                            actor.actor,
                            "prompt.approval_refused",
                            f"prompt:{record.ref}",
                            {"reason": "self_approval", "author": record.author},
                        )
                    ],
                )
            raise PromptApprovalError(
                f"{actor.actor} proposed {record.ref} and cannot approve it: a second person must",
                hint=f"ask another holder of prompts:approve to run `sluice prompts approve "
                f"{name} {version}`",
            )
        with self.store.begin() as conn:
            _lock(conn, name)
            row = self._row(conn, name, version)
            assert row is not None  # versions are never deleted
            if row.state != "passed":
                raise _cannot_approve(PromptVersion.from_row(row))
            conn.execute(
                update(prompt_versions)
                .where(prompt_versions.c.name == name, prompt_versions.c.version == version)
                .values(state="approved", approver=actor.actor, approved_at=utcnow())
            )
            append(
                conn,
                [
                    AuditEvent(
                        actor.actor,
                        "prompt.approved",
                        f"prompt:{record.ref}",
                        {
                            "author": row.author,
                            "sha256": row.sha256,
                            "evaluation": (row.evaluation or {}).get("summary"),
                            "note": note,
                        },
                    )
                ],
            )
        return self.get(name, version)

    def activate(
        self, name: str, version: int, actor: Principal, *, reason: str | None = None
    ) -> PromptVersion:
        """Make an approved version the one that renders; the active one is retired.

        Raises:
            PermissionDeniedError: ``actor`` lacks ``prompts:approve``.
            PromptNotFoundError: No such version.
            PromptApprovalError: It was never approved, or is already active.
        """
        authorize(self.store, actor, "prompts:approve")
        with self.store.begin() as conn:
            _lock(conn, name)
            row = self._row(conn, name, version)
            if row is None:
                raise _not_found(name, version)
            record = PromptVersion.from_row(row)
            if record.state == "active":
                raise PromptApprovalError(f"{record.ref} is already active: nothing to change")
            if record.state not in ("approved", "retired") or record.approver is None:
                raise _cannot_activate(record)
            self._switch(conn, record, "activate", actor.actor, reason)
        return self.get(name, version)

    def rollback(self, name: str, actor: Principal, *, reason: str | None = None) -> PromptVersion:
        """Retire the active version and restore the one active before it (module docs).

        Raises:
            PermissionDeniedError: ``actor`` lacks ``prompts:approve``.
            PromptApprovalError: There is no earlier active version to go back to.
        """
        authorize(self.store, actor, "prompts:approve")
        with self.store.begin() as conn:
            _lock(conn, name)
            stack = stack_after([(a.action, a.version) for a in self._history(conn, name)])
            if len(stack) < 2:
                raise PromptApprovalError(
                    f"prompt {name!r} has no earlier active version to roll back to",
                    hint=f"`sluice prompts show {name}` lists its activations; activate an "
                    "approved version by number",
                )
            row = self._row(conn, name, stack[-2])
            assert row is not None  # versions are never deleted
            self._switch(conn, PromptVersion.from_row(row), "rollback", actor.actor, reason)
            restored = stack[-2]
        return self.get(name, restored)

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _row(conn: Connection, name: str, version: int | None) -> Any:
        query = select(prompt_versions).where(prompt_versions.c.name == name)
        if version is None:
            query = query.where(prompt_versions.c.state == "active")
        else:
            query = query.where(prompt_versions.c.version == version)
        return conn.execute(query).one_or_none()

    @staticmethod
    def _history(conn: Connection, name: str) -> builtins.list[PromptActivation]:
        rows = conn.execute(
            select(prompt_activations)
            .where(prompt_activations.c.name == name)
            .order_by(prompt_activations.c.id)
        )
        return [PromptActivation.from_row(r) for r in rows]

    @staticmethod
    def _switch(
        conn: Connection,
        record: PromptVersion,
        action: Literal["activate", "rollback"],
        actor: str,
        reason: str | None,
    ) -> None:
        """Make ``record`` active, retire the active one, record and audit it."""
        name = record.name
        previous = conn.execute(
            select(prompt_versions.c.version).where(
                prompt_versions.c.name == name, prompt_versions.c.state == "active"
            )
        ).scalar_one_or_none()
        if previous is not None:
            conn.execute(
                update(prompt_versions)
                .where(prompt_versions.c.name == name, prompt_versions.c.version == previous)
                .values(state="retired")
            )
        conn.execute(
            update(prompt_versions)
            .where(prompt_versions.c.name == name, prompt_versions.c.version == record.version)
            .values(state="active")
        )
        conn.execute(
            prompt_activations.insert().values(
                name=name,
                action=action,
                version=record.version,
                previous=previous,
                actor=actor,
                reason=reason,
                at=utcnow(),
            )
        )
        append(
            conn,
            [
                AuditEvent(
                    actor,
                    "prompt.activated" if action == "activate" else "prompt.rolled_back",
                    f"prompt:{record.ref}",
                    {
                        "previous": _ref(name, previous) if previous is not None else None,
                        "sha256": record.sha256,
                        "approver": record.approver,
                        "reason": reason,
                    },
                )
            ],
        )


def _cannot_approve(record: PromptVersion) -> PromptApprovalError:
    fix = f"`sluice prompts evaluate {record.name} {record.version}`"
    if record.state == "proposed":
        return PromptApprovalError(
            f"cannot approve {record.ref}: it has not been evaluated", hint=f"run {fix} first"
        )
    if record.state == "failed":
        summary = (record.evaluation or {}).get("summary", "")
        return PromptApprovalError(
            f"cannot approve {record.ref}: its evaluation did not pass ({summary})",
            hint=f"see `sluice prompts show {record.name} {record.version}`; fix the prompt "
            "and propose it again",
        )
    return PromptApprovalError(f"{record.ref} is {record.state}: it was approved already")


def _cannot_activate(record: PromptVersion) -> PromptApprovalError:
    steps = {
        "proposed": f"evaluate it (`sluice prompts evaluate {record.name} {record.version}`), "
        "then have a second person approve it",
        "failed": "its evaluation failed: fix the prompt and propose it again",
        "passed": f"have a second person approve it (`sluice prompts approve {record.name} "
        f"{record.version}`)",
    }
    return PromptApprovalError(
        f"cannot activate {record.ref}: it is {record.state}, not approved",
        hint=steps.get(record.state, "only approved versions can be activated"),
    )
