"""Governance: audit log, lineage, RBAC, PII and policy.

Today lineage is the per-step record kept by the execution plane (``step_runs``, shown
by ``sluice items show``). The tamper-evident audit log, RBAC and PII redaction are the
control-plane issues' work and are not built yet.
"""

__all__: list[str] = []
