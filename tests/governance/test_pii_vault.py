"""The PII vault: sealed at rest, revealed only to cleared principals, on both backends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from sluice.config import Settings
from sluice.errors import NotFoundError, PermissionDeniedError, PiiError
from sluice.governance import Principal, iter_entries, local_admin
from sluice.governance.pii import generate_key, open_vault, redact, restore, vault_keys
from sluice.governance.pii.tables import pii_vault
from sluice.store import Store, open_store


def _audit(store: Store) -> list[Any]:
    with store.read() as conn:
        return list(iter_entries(conn))


TEXT = "Please call Ana Costa on +44 20 7946 0958 or mail ana.costa@example.com."


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = open_store(settings)
    yield s
    s.dispose()


@pytest.fixture
def keyed(settings: Settings) -> Settings:
    return settings.model_copy(update={"pii_vault_key": generate_key()})


def test_pseudonymization_round_trips_for_a_cleared_admin(keyed: Settings, store: Store) -> None:
    vault = open_vault(keyed, store)
    out = redact(TEXT, "pseudonymize", vault=vault, actor="worker:w1")
    assert "ana.costa@example.com" not in out.text and "<EMAIL_1>" in out.text
    assert out.ref and out.ref.startswith("pii_")
    mapping = vault.reveal(out.ref, local_admin("ana"))
    assert restore(out.text, mapping) == TEXT
    actions = [e.action for e in _audit(store)]
    assert "pii.revealed" in actions


@pytest.mark.parametrize(
    "principal",
    [
        Principal(actor="token:tok_op", role="operator", pii_clearance=True),
        Principal(actor="token:tok_aud", role="auditor", pii_clearance=True),
        Principal(actor="token:tok_adm", role="admin", pii_clearance=False),
    ],
)
def test_others_are_refused_and_the_refusal_is_audited(
    keyed: Settings, store: Store, principal: Principal
) -> None:
    vault = open_vault(keyed, store)
    ref = redact(TEXT, "pseudonymize", vault=vault).ref
    assert ref
    with pytest.raises(PermissionDeniedError) as info:
        vault.reveal(ref, principal)
    assert info.value.permission == "pii:reveal"
    denied = [e for e in _audit(store) if e.action == "access.denied"]
    assert denied and denied[-1].actor == principal.actor
    assert "Ana" not in json.dumps(denied[-1].details)


def test_the_stored_mapping_is_not_plaintext(keyed: Settings, store: Store) -> None:
    vault = open_vault(keyed, store)
    ref = redact(TEXT, "pseudonymize", vault=vault).ref
    with store.read() as conn:
        row = conn.execute(select(pii_vault).where(pii_vault.c.ref == ref)).one()
    raw = bytes(row.sealed)
    for secret in (b"ana.costa", b"Ana Costa", b"7946", b"EMAIL_1"):
        assert secret not in raw
    # ... and it is the Fernet token of the mapping under the configured key.
    key = (keyed.pii_vault_key or "").encode()
    assert json.loads(Fernet(key).decrypt(raw))["<EMAIL_1>"] == "ana.costa@example.com"
    assert row.entries == 3


def test_a_rotated_key_still_opens_old_mappings(keyed: Settings, store: Store) -> None:
    old = open_vault(keyed, store)
    ref = redact(TEXT, "pseudonymize", vault=old).ref
    assert ref
    rotated = keyed.model_copy(update={"pii_vault_key": f"{generate_key()},{keyed.pii_vault_key}"})
    assert open_vault(rotated, store).reveal(ref, local_admin("ana"))["<PERSON_1>"] == "Ana Costa"
    other = keyed.model_copy(update={"pii_vault_key": generate_key()})
    with pytest.raises(PiiError, match="not configured"):
        open_vault(other, store).reveal(ref, local_admin("ana"))


def test_an_unknown_reference_is_not_found(keyed: Settings, store: Store) -> None:
    with pytest.raises(NotFoundError):
        open_vault(keyed, store).reveal("pii_nope", local_admin("ana"))


def test_a_bad_key_is_a_clear_error(settings: Settings) -> None:
    with pytest.raises(PiiError, match="not a Fernet key") as info:
        vault_keys(settings.model_copy(update={"pii_vault_key": "short"}))
    assert info.value.hint and "SLUICE_PII_VAULT_KEY" in info.value.hint


def test_sqlite_without_a_key_makes_a_local_one_once(sqlite_settings: Settings) -> None:
    first = vault_keys(sqlite_settings)
    path = sqlite_settings.home / "keys" / "pii-vault.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert vault_keys(sqlite_settings) == first


@pytest.mark.postgres
def test_postgres_without_a_key_says_how_to_set_one(postgres_settings: Settings) -> None:
    with pytest.raises(PiiError, match="no PII vault key") as info:
        vault_keys(postgres_settings)
    assert info.value.hint and "SLUICE_PII_VAULT_KEY" in info.value.hint
