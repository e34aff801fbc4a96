"""Priority rules for support messages: the intent's base priority, raised by signals.

Rules are data-light and explainable: every rule that fired is named in the step output,
so the lineage says why a ticket was marked urgent.

Example:
    >>> table = {"double_charge": {"priority": "high", "queue": "billing"}}
    >>> Prioritizer(table).assess("double_charge", "Charged twice, fix it ASAP").rules
    ('intent:double_charge=high', 'keyword:asap')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["LEVELS", "Assessment", "Prioritizer"]

#: From most to least urgent; the item priority values 0..3 follow this order.
LEVELS = ("urgent", "high", "normal", "low")

_URGENT_WORDS = re.compile(
    r"\b(asap|urgent(?:ly)?|immediately|right now|lawyer|legal action|chargeback|fraud"
    r"|unauthori[sz]ed|scam)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Assessment:
    """Priority and team queue for one message, with the rules that decided them."""

    priority: str
    queue: str
    rules: tuple[str, ...]


def _shouting(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return len(letters) >= 12 and sum(c.isupper() for c in letters) / len(letters) >= 0.7


class Prioritizer:
    """Applies the intent table and the signal rules (see module docs)."""

    def __init__(self, intents: Mapping[str, Mapping[str, Any]]) -> None:
        self.intents = intents

    def signals(self, text: str) -> list[str]:
        """Rules that raise priority, found in the text."""
        fired = [f"keyword:{m.lower()}" for m in sorted(set(_URGENT_WORDS.findall(text)))][:1]
        if _shouting(text):
            fired.append("shouting")
        return fired

    def assess(self, intent: str, text: str) -> Assessment:
        """Priority and queue of a message classified as ``intent``."""
        info = self.intents.get(intent, {"priority": "normal", "queue": "general"})
        base = str(info["priority"])
        signals = self.signals(text)
        level = max(0, LEVELS.index(base) - len(signals))
        return Assessment(LEVELS[level], str(info["queue"]), (f"intent:{intent}={base}", *signals))
