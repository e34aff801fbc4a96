"""Verifying the audit chain: every hash, every link, every checkpoint signature.

:func:`verify_entries` streams the entries once in chain order and keeps constant memory.
At the first entry that does not check out it stops and classifies what happened, from
the evidence in the whole chain (this second look is only taken on failure):

* ``modified`` - a field of an entry was changed (its own hash no longer matches);
* ``deleted`` - an entry is missing (a gap in ``seq``, or later entries renumbered);
* ``inserted`` - an entry was added (later entries renumbered to make room);
* ``reordered`` - two entries changed places;
* ``rewritten`` - the chain is consistent but does not match what a checkpoint signed:
  someone rebuilt it from some entry on;
* ``forged`` - a checkpoint whose signature does not verify;
* ``unverified`` - a checkpoint signed by a key the verifier was not given. Someone who
  rewrote the chain and signed it with a key of their own looks exactly like this, so
  it fails verification unless unknown keys are explicitly allowed.

What cannot be seen: entries after the last checkpoint are not sealed, so removing or
forging entries at the very end is visible only once a checkpoint seals them, or against
an exported copy. :class:`AuditReport` says how many entries are unsealed. Memory stays
constant while the chain checks out; naming a break reads the rest of the chain.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sluice.governance.audit import (
    CHECKPOINT_ACTION,
    GENESIS_HASH,
    AuditEntry,
    entry_hash,
    iter_entries,
)
from sluice.governance.checkpoints import key_id, signature_valid
from sluice.store import Store

__all__ = ["AuditReport", "ChainBreak", "verify", "verify_entries"]

BreakKind = Literal[
    "modified", "deleted", "inserted", "reordered", "rewritten", "forged", "unverified"
]


@dataclass(frozen=True)
class ChainBreak:
    """The first place where the chain does not check out."""

    seq: int
    kind: BreakKind
    message: str


@dataclass
class AuditReport:
    """What :func:`verify_entries` found.

    Attributes:
        ok: The chain and every checkable checkpoint verify.
        entries: Entries read.
        head_seq: ``seq`` of the last entry read.
        head_hash: Its hash (note it down: it anchors what you verified today).
        checkpoints: Checkpoints whose signature was verified.
        unverified_checkpoints: Checkpoints signed by a key not given to the verifier.
        sealed_through: ``seq`` up to which a verified checkpoint seals the chain.
        unsealed: Entries after ``sealed_through``.
        first_break: The first problem, if any.
    """

    ok: bool = True
    entries: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    checkpoints: int = 0
    unverified_checkpoints: int = 0
    sealed_through: int = 0
    unsealed: int = 0
    first_break: ChainBreak | None = None
    unknown_keys: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (``sluice audit verify --json``)."""
        return asdict(self)


def _own_hash(entry: AuditEntry, seq: int | None = None) -> str:
    return entry_hash(
        entry.seq if seq is None else seq,
        entry.at,
        entry.actor,
        entry.action,
        entry.target,
        entry.details,
        entry.prev_hash,
    )


def _checkpoint_problem(
    entry: AuditEntry, keys: Mapping[str, Ed25519PublicKey]
) -> tuple[BreakKind | None, str, str | None]:
    """``(kind, message, unknown_key_id)`` for a checkpoint entry whose links hold."""
    try:
        details = json.loads(entry.details)
        sealed_seq, sealed_hash = int(details["sealed_seq"]), str(details["sealed_hash"])
        kid, signature = str(details["key_id"]), str(details["signature"])
    except (KeyError, TypeError, ValueError):
        return "forged", "its details are malformed", None
    key = keys.get(kid)
    if key is not None and not signature_valid(key, sealed_seq, sealed_hash, signature):
        return "forged", "its signature does not verify", None
    if sealed_seq != entry.seq - 1 or sealed_hash != entry.prev_hash:
        return "rewritten", "the chain before it is not what it sealed", None
    return None, "", kid if key is None else None


def verify_entries(
    entries: Iterable[AuditEntry],
    public_keys: Sequence[Ed25519PublicKey] = (),
    *,
    allow_unknown_keys: bool = False,
) -> AuditReport:
    """Check ``entries`` (in chain order, as the store returns them) - module docs."""
    keys = {key_id(k): k for k in public_keys}
    report = AuditReport()
    expected_seq, prev_hash = 1, GENESIS_HASH
    seen: list[AuditEntry] = []  # the last entries, kept to classify a break (_classify)
    first_unverified: ChainBreak | None = None
    source = iter(entries)
    for entry in source:
        seen.append(entry)
        own_ok = _own_hash(entry) == entry.hash
        if not (entry.seq == expected_seq and own_ok and entry.prev_hash == prev_hash):
            rest = [entry, *source]
            report.first_break = _classify(seen[:-1], rest, expected_seq, prev_hash)
            break
        if entry.action == CHECKPOINT_ACTION:
            kind, problem, unknown = _checkpoint_problem(entry, keys)
            if kind is not None:
                since = report.sealed_through + 1
                report.first_break = ChainBreak(
                    since if kind == "rewritten" else entry.seq,
                    kind,
                    f"checkpoint at seq {entry.seq}: {problem}"
                    + (
                        f"; an entry from seq {since} on was altered" if kind == "rewritten" else ""
                    ),
                )
                break
            if unknown is not None:
                report.unverified_checkpoints += 1
                if unknown not in report.unknown_keys:
                    report.unknown_keys.append(unknown)
                if not allow_unknown_keys and first_unverified is None:
                    first_unverified = ChainBreak(
                        entry.seq,
                        "unverified",
                        f"checkpoint at seq {entry.seq} is signed by key {unknown}, which "
                        "was not given: pass its public key (or allow unknown keys)",
                    )
            else:
                report.checkpoints += 1
                report.sealed_through = entry.seq - 1
        report.entries += 1
        report.head_seq, report.head_hash = entry.seq, entry.hash
        expected_seq, prev_hash = entry.seq + 1, entry.hash
        if len(seen) > 2:  # keep memory flat on the happy path
            seen = seen[-2:]
    if report.first_break is None:
        report.first_break = first_unverified
    report.ok = report.first_break is None
    report.unsealed = max(0, report.head_seq - report.sealed_through)
    return report


def _classify(
    before: Sequence[AuditEntry], rest: Sequence[AuditEntry], expected_seq: int, prev_hash: str
) -> ChainBreak:
    """Name the first break from the whole chain's evidence (failure path only)."""
    entry = rest[0]
    everything = [*before, *rest]
    by_seq = {e.seq: e for e in everything}

    def verifies_as(e: AuditEntry, seq: int) -> bool:
        return _own_hash(e, seq) == e.hash

    def true_seq(e: AuditEntry) -> int | None:
        """The seq under which ``e``'s content hashes right (it may have been moved)."""
        # Renumbering after deletions can move an entry past the last seq still present.
        candidates = range(1, max(by_seq) + len(everything) + 2)
        for seq in sorted(candidates, key=lambda s: abs(s - e.seq)):
            if seq != e.seq and verifies_as(e, seq):
                return seq
        return None

    if entry.seq != expected_seq:
        owner = next((e for e in everything if verifies_as(e, expected_seq)), None)
        if owner is None:
            if entry.seq > expected_seq:
                missing = f"{expected_seq}" + (
                    f"-{entry.seq - 1}" if entry.seq - 1 > expected_seq else ""
                )
                return ChainBreak(expected_seq, "deleted", f"entry {missing} is missing")
            return ChainBreak(entry.seq, "inserted", f"entry {entry.seq} appears out of order")
        return ChainBreak(
            expected_seq,
            "modified",
            f"entry {expected_seq} now claims seq {owner.seq}: its seq field was changed",
        )
    if _own_hash(entry) != entry.hash:
        original = true_seq(entry)
        if original is not None:
            partner = by_seq.get(original)
            if partner is not None and verifies_as(partner, entry.seq):
                return ChainBreak(
                    entry.seq, "reordered", f"entries {entry.seq} and {original} swapped places"
                )
            if original > entry.seq:
                return ChainBreak(
                    entry.seq,
                    "deleted",
                    f"entry {entry.seq} was removed and the entries after it renumbered",
                )
            return ChainBreak(
                entry.seq - 1,
                "inserted",
                f"an entry was inserted before {original + 1} and the entries after it renumbered",
            )
        return ChainBreak(
            entry.seq, "modified", f"entry {entry.seq} does not match its hash: a field was changed"
        )
    # Its own hash holds and seq is right, but it does not follow the entry before it.
    hashes = {e.hash: e for e in everything}
    if len(before) >= 2 and entry.prev_hash == before[-2].hash:
        return ChainBreak(
            before[-1].seq, "inserted", f"entry {before[-1].seq} was inserted into the chain"
        )
    if entry.prev_hash in hashes:
        return ChainBreak(
            entry.seq, "reordered", f"entry {entry.seq} follows the wrong entry: moved"
        )
    if entry.prev_hash != prev_hash:
        return ChainBreak(
            entry.seq,
            "deleted",
            f"the entry before {entry.seq} is missing (its link points to no entry)",
        )
    return ChainBreak(entry.seq, "modified", f"entry {entry.seq} is inconsistent")


def verify(
    store: Store, public_keys: Sequence[Ed25519PublicKey] = (), *, allow_unknown_keys: bool = False
) -> AuditReport:
    """Verify the store's whole audit chain in one consistent read (module docs)."""
    with store.read() as conn:
        return verify_entries(
            iter_entries(conn), public_keys, allow_unknown_keys=allow_unknown_keys
        )
