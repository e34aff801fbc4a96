"""A small corpus on disk, and a knowledge base over the test's store with a real gateway."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sluice.config import Settings
from sluice.knowledge import KnowledgeBase
from sluice.models import Gateway
from sluice.store import open_store

ACTOR = "cli:test"

REFUNDS = """---
title: Refunds
product: billing
tags: [refund, billing]
updated: 2026-01-10
---
# Refunds

## Timing

We send refunds within 3 business days of receiving the return. Banks then take 5 to
10 business days to show the money on the card statement.

## Gift cards

Refunds for gift card purchases go back to the gift card balance instantly.
"""

DELIVERY = """---
title: Delivery
product: logistics
tags: [delivery, parcel]
updated: 2025-06-01
---
# Delivery

Standard delivery takes 3 to 5 business days. Express delivery arrives the next
business day when ordered before 2 pm.

## Lost parcels

A parcel is considered lost when it has not moved for 7 business days. We then send a
free replacement by express delivery.
"""

PASSWORDS = """---
title: Passwords
product: accounts
tags: [login, password]
updated: 2026-03-01
---
# Resetting your password

Choose Forgot password on the sign-in page. The reset link arrives by e-mail and stays
valid for 30 minutes. After 5 wrong passwords the account locks for 30 minutes.
"""

FAQ = """question,answer,product,tags
How do I change my delivery address?,Edit it in Account > Orders.,logistics,delivery; address
Can I pay with PayPal?,"Yes, PayPal and all major cards are accepted.",billing,payment
How do I delete my account?,Write to privacy@example.com; it is gone in 30 days.,accounts,privacy
"""

NOTES = "Warehouse notes. The zebra crossing outside the depot is repainted every spring.\n"


def write_corpus(folder: Path) -> Path:
    """The corpus: three articles, a three-row FAQ, a text file and a broken PDF."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "refunds.md").write_text(REFUNDS)
    (folder / "delivery.md").write_text(DELIVERY)
    (folder / "passwords.md").write_text(PASSWORDS)
    (folder / "faq.csv").write_text(FAQ)
    (folder / "notes.txt").write_text(NOTES)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a real pdf")
    return folder


@contextmanager
def knowledge_base(settings: Settings, **kwargs: object) -> Iterator[KnowledgeBase]:
    """A knowledge base over a fresh store of ``settings``, with a real gateway."""
    store = open_store(settings)
    gateway = Gateway(settings, store)
    try:
        yield KnowledgeBase(store, gateway, **kwargs)  # type: ignore[arg-type]
    finally:
        gateway.close()
        store.dispose()


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_CAP_VERSION_3 = 0x20080522
_CAP_DAC = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH


@contextmanager
def unlistable(folder: Path) -> Iterator[None]:
    """``folder`` cannot be listed by this thread until the block ends.

    Why the capabilities: tests run as root here and in CI, and root lists a folder
    whatever its mode. Dropping the two permission-bypass capabilities from this
    thread's effective set (Linux keeps capabilities per thread; the permitted set stays,
    so they come back afterwards) makes ``chmod 000`` mean what it says for the ingest
    running on this thread. The store's files are root's own, so it still opens them.
    """
    mode = folder.stat().st_mode
    folder.chmod(0)
    libc = ctypes.CDLL(None, use_errno=True)
    header = _CapHeader(_CAP_VERSION_3, 0)
    saved = (_CapData * 2)()
    root = os.geteuid() == 0
    if root:
        if libc.capget(ctypes.byref(header), saved) != 0:
            raise OSError(ctypes.get_errno(), "capget failed")
        lowered = (_CapData * 2)()
        ctypes.memmove(lowered, saved, ctypes.sizeof(saved))
        lowered[0].effective &= ~_CAP_DAC
        if libc.capset(ctypes.byref(header), lowered) != 0:
            raise OSError(ctypes.get_errno(), "capset failed")
    try:
        try:
            os.listdir(folder)
        except PermissionError:
            pass
        else:
            raise AssertionError(f"{folder} is still listable: the test would prove nothing")
        yield
    finally:
        if root:
            libc.capset(ctypes.byref(_CapHeader(_CAP_VERSION_3, 0)), saved)
        folder.chmod(mode)
