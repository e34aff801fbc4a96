"""Governance: the tamper-evident audit log, API tokens and role-based access.

Every plane records into governance; governance calls none of them. Lineage rows of
each step are kept by the execution plane (``step_runs``) and referenced from audit
entries by digest, so a changed lineage row is detected like a changed audit entry.
"""

from sluice.governance.audit import (
    CHECKPOINT_ACTION,
    GENESIS_HASH,
    AuditEntry,
    AuditEvent,
    append,
    canonical_json,
    digest,
    entries_for,
    iter_entries,
)
from sluice.governance.audit_verify import AuditReport, ChainBreak, verify, verify_entries
from sluice.governance.checkpoints import (
    checkpoint,
    key_id,
    load_public_key,
    load_signing_key,
    public_key_pem,
)
from sluice.governance.injection_rules import (
    INJECTION_RULES,
    InjectionRule,
    RuleMatch,
    match_injection_rules,
    normalize_for_rules,
)
from sluice.governance.output_guard import (
    leaked_pii,
    parse_json_output,
    require_allowed_action,
    require_no_pii_leak,
)
from sluice.governance.pii import PiiScan, PiiVault, Redacted, open_vault, redact, scan
from sluice.governance.prompts import PromptRegistry, PromptVersion, RenderedPrompt
from sluice.governance.rbac import (
    PERMISSIONS,
    POLICY,
    ROLES,
    Permission,
    Principal,
    Role,
    allowed,
    authorize,
    local_admin,
)
from sluice.governance.tokens import (
    TokenRecord,
    authenticate,
    create_token,
    list_tokens,
    revoke_token,
)

__all__ = [
    "CHECKPOINT_ACTION",
    "GENESIS_HASH",
    "INJECTION_RULES",
    "PERMISSIONS",
    "POLICY",
    "ROLES",
    "AuditEntry",
    "AuditEvent",
    "AuditReport",
    "ChainBreak",
    "InjectionRule",
    "Permission",
    "PiiScan",
    "PiiVault",
    "Principal",
    "PromptRegistry",
    "PromptVersion",
    "Redacted",
    "RenderedPrompt",
    "Role",
    "RuleMatch",
    "TokenRecord",
    "allowed",
    "append",
    "authenticate",
    "authorize",
    "canonical_json",
    "checkpoint",
    "create_token",
    "digest",
    "entries_for",
    "iter_entries",
    "key_id",
    "leaked_pii",
    "list_tokens",
    "load_public_key",
    "load_signing_key",
    "local_admin",
    "match_injection_rules",
    "normalize_for_rules",
    "open_vault",
    "parse_json_output",
    "public_key_pem",
    "redact",
    "require_allowed_action",
    "require_no_pii_leak",
    "revoke_token",
    "scan",
    "verify",
    "verify_entries",
]
