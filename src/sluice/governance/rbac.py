"""Role-based access: five roles, one policy table, one function that decides.

Why a table and not a policy engine (casbin and the like): the roles are fixed by the
product and the only attributes are per-pipeline and per-queue scopes, which a model
file would express no more clearly than the table below. Every edge (CLI, API) calls
:func:`authorize`; a refusal raises :class:`~sluice.errors.PermissionDeniedError` and is
appended to the audit log.

=========  =================================================================
role       may
=========  =================================================================
admin      everything
operator   run and submit work, retry items and rejects, read items, review
           tasks, models, outbox; train models; search and ingest the knowledge
           base (activating an index version is for admins)
reviewer   read and decide review tasks in the queues assigned to them
auditor    read everything (items, lineage, audit log, models, review, knowledge
           base), change nothing
service    submit events and read the items of its pipelines (machine clients)
=========  =================================================================

The CLI on the local machine acts as the configured local admin, explicitly
(:func:`local_admin`); tokens carry any role (:mod:`sluice.governance.tokens`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from sluice.errors import PermissionDeniedError
from sluice.governance.audit import AuditEvent, append
from sluice.store import Store

__all__ = [
    "PERMISSIONS",
    "POLICY",
    "ROLES",
    "Permission",
    "Principal",
    "Role",
    "allowed",
    "authorize",
    "local_admin",
]

Role = Literal["admin", "operator", "reviewer", "auditor", "service"]
ROLES: tuple[Role, ...] = get_args(Role)

Permission = Literal[
    "items:read",
    "items:submit",
    "items:retry",
    "lineage:read",
    "outbox:read",
    "rejects:read",
    "rejects:retry",
    "review:read",
    "review:decide",
    "models:read",
    "models:train",
    "models:promote",
    "knowledge:read",
    "knowledge:ingest",
    "knowledge:activate",
    "pii:reveal",
    "prompts:read",
    "prompts:propose",
    "prompts:approve",
    "audit:read",
    "audit:checkpoint",
    "tokens:manage",
    "worker:run",
]
PERMISSIONS: tuple[Permission, ...] = get_args(Permission)

_READS: frozenset[Permission] = frozenset(p for p in PERMISSIONS if p.endswith(":read"))

#: The whole policy: which role holds which permission.
POLICY: dict[Role, frozenset[Permission]] = {
    "admin": frozenset(PERMISSIONS),
    "operator": frozenset(
        {
            "items:read",
            "items:submit",
            "items:retry",
            "lineage:read",
            "outbox:read",
            "rejects:read",
            "rejects:retry",
            "review:read",
            "models:read",
            "models:train",
            "knowledge:read",
            "knowledge:ingest",
            "prompts:read",
            "prompts:propose",
            "worker:run",
        }
    ),
    "reviewer": frozenset({"review:read", "review:decide"}),
    "auditor": _READS,
    "service": frozenset({"items:submit", "items:read", "worker:run"}),
}


@dataclass(frozen=True)
class Principal:
    """Who is asking: an actor name, a role and the scopes of that role.

    Attributes:
        actor: How the audit log names them (``token:tok_...``, ``cli:ana``).
        role: One of :data:`ROLES`.
        pipelines: Pipelines they may act on; None means all.
        queues: Review queues they may work (reviewers); None means all.
        pii_clearance: May see personal data unmasked.
        name: A display name (a token's name, the OS user); defaults to ``actor``.
    """

    actor: str
    role: Role
    pipelines: Sequence[str] | None = None
    queues: Sequence[str] | None = None
    pii_clearance: bool = False
    name: str = ""

    @property
    def display_name(self) -> str:
        """``name``, or ``actor`` when there is none."""
        return self.name or self.actor


def local_admin(user: str) -> Principal:
    """The principal of the CLI on this machine: an admin, named for the OS user."""
    return Principal(actor=f"cli:{user}", role="admin", pii_clearance=True, name=user)


def allowed(
    principal: Principal,
    permission: Permission,
    *,
    pipeline: str | None = None,
    queue: str | None = None,
) -> bool:
    """Whether ``principal`` holds ``permission`` (on ``pipeline`` / ``queue`` if given)."""
    if permission not in POLICY.get(principal.role, frozenset()):
        return False
    if (
        pipeline is not None
        and principal.pipelines is not None
        and pipeline not in principal.pipelines
    ):
        return False
    return not (
        queue is not None and principal.queues is not None and queue not in principal.queues
    )


def authorize(
    store: Store,
    principal: Principal,
    permission: Permission,
    *,
    pipeline: str | None = None,
    queue: str | None = None,
) -> None:
    """Raise :class:`PermissionDeniedError` unless allowed; a refusal is audited.

    The refusal's audit entry is committed in a transaction of its own, before the
    error is raised (a caller's transaction would roll it back).
    """
    if allowed(principal, permission, pipeline=pipeline, queue=queue):
        return
    scope = {"pipeline": pipeline, "queue": queue}
    with store.begin() as conn:
        append(
            conn,
            [
                AuditEvent(
                    principal.actor,
                    "access.denied",
                    permission,
                    {"role": principal.role, **{k: v for k, v in scope.items() if v}},
                )
            ],
        )
    where = "".join(f" on {k} {v!r}" for k, v in scope.items() if v)
    raise PermissionDeniedError(
        f"{principal.actor} ({principal.role}) may not {permission}{where}",
        role=principal.role,
        permission=permission,
        hint="ask an admin for a token with a role that allows it",
    )
