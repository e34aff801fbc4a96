"""The audit chain: every tampering of a sealed entry is found and named (property-based).

The chains here are built in memory with the real hashing and signing code; the tests in
test_audit_store.py do the same against the databases.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.governance.audit import (
    CHECKPOINT_ACTION,
    GENESIS_HASH,
    AuditEntry,
    canonical_json,
    entry_hash,
)
from sluice.governance.audit_verify import verify_entries
from sluice.governance.checkpoints import key_id

KEY = Ed25519PrivateKey.generate()
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
FIELDS = ["seq", "at", "actor", "action", "target", "details", "prev_hash", "hash"]


def _entry(seq: int, prev: str, actor: str, action: str, target: str, details: dict) -> AuditEntry:
    at = T0 + timedelta(seconds=seq)
    text = canonical_json(details)
    return AuditEntry(
        seq,
        at,
        actor,
        action,
        target,
        text,
        prev,
        entry_hash(seq, at, actor, action, target, text, prev),
    )


def _checkpoint(seq: int, prev: AuditEntry) -> AuditEntry:
    from sluice.governance.checkpoints import _signed_payload

    details = {
        "sealed_seq": prev.seq,
        "sealed_hash": prev.hash,
        "key_id": key_id(KEY.public_key()),
        "signature": KEY.sign(_signed_payload(prev.seq, prev.hash)).hex(),
    }
    return _entry(seq, prev.hash, "worker:w", CHECKPOINT_ACTION, "audit", details)


def build_chain(
    events: list[tuple[str, str, str, dict]], checkpoint_every: int = 7
) -> list[AuditEntry]:
    """A chain of ``events`` with a checkpoint every few entries and one at the end."""
    chain: list[AuditEntry] = []
    prev = GENESIS_HASH
    for actor, action, target, details in events:
        chain.append(_entry(len(chain) + 1, prev, actor, action, target, details))
        prev = chain[-1].hash
        if len(chain) % checkpoint_every == 0:
            chain.append(_checkpoint(len(chain) + 1, chain[-1]))
            prev = chain[-1].hash
    chain.append(_checkpoint(len(chain) + 1, chain[-1]))
    return chain


def db_order(entries: list[AuditEntry]) -> list[AuditEntry]:
    """As the store returns them: ordered by seq."""
    return sorted(entries, key=lambda e: e.seq)


def renumbered(entries: list[AuditEntry]) -> list[AuditEntry]:
    return [replace(e, seq=i + 1) for i, e in enumerate(entries)]


events_strategy = st.lists(
    st.tuples(
        st.sampled_from(["worker:a", "cli:ana", "token:tok_1"]),
        st.sampled_from(["item.created", "step.completed", "review.decided"]),
        st.text(min_size=1, max_size=12),
        st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=8), max_size=3),
    ),
    min_size=3,
    max_size=30,
)


def test_an_untouched_chain_verifies_and_is_sealed_to_its_last_checkpoint() -> None:
    chain = build_chain([("a", "item.created", f"itm{i}", {"i": i}) for i in range(20)])
    report = verify_entries(chain, [KEY.public_key()])
    assert report.ok, report.first_break
    checkpoints = sum(e.action == CHECKPOINT_ACTION for e in chain)
    assert checkpoints >= 3
    assert report.entries == len(chain) and report.checkpoints == checkpoints
    assert report.sealed_through == len(chain) - 1 and report.unsealed == 1


def test_a_checkpoint_signed_by_an_unknown_key_fails_unless_allowed() -> None:
    chain = build_chain([("a", "item.created", "x", {})] * 5)
    report = verify_entries(chain)  # no public key given
    assert not report.ok and report.first_break is not None
    assert report.first_break.kind == "unverified"
    assert report.unverified_checkpoints == 1 and report.unknown_keys == [key_id(KEY.public_key())]
    allowed = verify_entries(chain, allow_unknown_keys=True)
    assert allowed.ok and allowed.checkpoints == 0 and allowed.unsealed == len(chain)
    # A rewritten chain re-signed with the forger's own key is exactly this case.
    assert (
        verify_entries(chain, [Ed25519PrivateKey.generate().public_key()]).first_break.kind
        == "unverified"
    )


@settings(max_examples=150, deadline=None)
@given(events_strategy, st.data())
def test_changing_any_field_of_any_sealed_entry_is_found(events, data) -> None:
    chain = build_chain(events)
    index = data.draw(st.integers(0, len(chain) - 2), label="entry")  # the tail is unsealed
    name = data.draw(st.sampled_from(FIELDS), label="field")
    entry = chain[index]
    if name == "seq":
        value = data.draw(st.sampled_from([0, -1, len(chain) + 1, len(chain) + 9]))
    elif name == "at":
        value = entry.at + timedelta(microseconds=data.draw(st.integers(1, 10**9)))
    elif name in ("prev_hash", "hash"):
        value = data.draw(st.text("0123456789abcdef", min_size=64, max_size=64))
    elif name == "details":
        value = canonical_json({"forged": data.draw(st.integers())})
    else:
        value = getattr(entry, name) + data.draw(st.text(min_size=1, max_size=4))
    if getattr(entry, name) == value:
        return
    tampered = list(chain)
    tampered[index] = replace(entry, **{name: value})
    report = verify_entries(db_order(tampered), [KEY.public_key()])
    assert not report.ok
    assert report.first_break is not None and report.first_break.kind == "modified", report


@settings(max_examples=100, deadline=None)
@given(events_strategy, st.data())
def test_deleting_a_sealed_entry_is_found(events, data) -> None:
    chain = build_chain(events)
    index = data.draw(st.integers(0, len(chain) - 2))
    tampered = chain[:index] + chain[index + 1 :]
    if data.draw(st.booleans(), label="renumber the rest"):
        tampered = renumbered(tampered)
    report = verify_entries(db_order(tampered), [KEY.public_key()])
    assert not report.ok and report.first_break is not None
    assert report.first_break.kind == "deleted", report
    assert report.first_break.seq == index + 1


@settings(max_examples=100, deadline=None)
@given(events_strategy, st.data())
def test_inserting_a_forged_entry_is_found(events, data) -> None:
    chain = build_chain(events)
    index = data.draw(st.integers(0, len(chain) - 1))  # before a sealed entry
    prev = chain[index - 1].hash if index else GENESIS_HASH
    # A careful forger: the entry links to its predecessor and carries a correct hash.
    forged = _entry(index + 1, prev, "cli:mallory", "model.promoted", "support-intent", {})
    tampered = renumbered([*chain[:index], forged, *chain[index:]])
    report = verify_entries(db_order(tampered), [KEY.public_key()])
    assert not report.ok and report.first_break is not None
    assert report.first_break.kind == "inserted", report


@settings(max_examples=100, deadline=None)
@given(events_strategy, st.data())
def test_swapping_two_entries_is_found(events, data) -> None:
    chain = build_chain(events)
    i = data.draw(st.integers(0, len(chain) - 2))
    j = data.draw(st.integers(i + 1, len(chain) - 1))
    tampered = list(chain)
    # Swapping rows in the table: each takes the other's position (seq).
    tampered[i], tampered[j] = (
        replace(chain[j], seq=chain[i].seq),
        replace(chain[i], seq=chain[j].seq),
    )
    report = verify_entries(db_order(tampered), [KEY.public_key()])
    assert not report.ok and report.first_break is not None
    assert report.first_break.kind == "reordered", report
    assert report.first_break.seq == i + 1


@settings(max_examples=60, deadline=None)
@given(events_strategy, st.data())
def test_a_rewritten_chain_does_not_match_its_signed_checkpoints(events, data) -> None:
    chain = build_chain(events)
    index = data.draw(st.integers(0, len(chain) - 2))
    if chain[index].action == CHECKPOINT_ACTION:
        return
    # Someone with write access changes an entry and recomputes every hash after it.
    rebuilt: list[AuditEntry] = list(chain[:index])
    prev = chain[index - 1].hash if index else GENESIS_HASH
    for k, e in enumerate(chain[index:]):
        details = canonical_json({"rewritten": True}) if k == 0 else e.details
        h = entry_hash(e.seq, e.at, e.actor, e.action, e.target, details, prev)
        rebuilt.append(replace(e, details=details, prev_hash=prev, hash=h))
        prev = h
    report = verify_entries(rebuilt, [KEY.public_key()])
    assert not report.ok and report.first_break is not None
    assert report.first_break.kind == "rewritten", report
    assert report.first_break.seq <= index + 1


def test_forged_entries_after_the_last_checkpoint_are_unsealed_not_hidden() -> None:
    chain = build_chain([("a", "item.created", "x", {})] * 5)
    forged = _entry(len(chain) + 1, chain[-1].hash, "cli:mallory", "item.created", "y", {})
    report = verify_entries([*chain, forged], [KEY.public_key()])
    assert report.ok  # a consistent tail cannot be told from a real one ...
    assert report.unsealed == 2  # ... so the report says it is not sealed yet


@pytest.mark.parametrize("name", ["sealed_seq", "sealed_hash", "signature"])
def test_a_forged_checkpoint_is_refused(name: str) -> None:
    import json

    chain = build_chain([("a", "item.created", "x", {})] * 4)
    last = chain[-1]
    details = json.loads(last.details)
    details[name] = details[name] - 1 if name == "sealed_seq" else "ab" * (len(details[name]) // 2)
    forged = _entry(last.seq, last.prev_hash, last.actor, last.action, last.target, details)
    report = verify_entries([*chain[:-1], forged], [KEY.public_key()])
    assert not report.ok and report.first_break is not None
    assert report.first_break.kind in {"forged", "rewritten"}
