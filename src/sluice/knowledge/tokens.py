"""Counting tokens the way the encoder will see them.

Chunks are bounded in tokens because the encoder is: all-MiniLM-L6-v2 reads at most 256
word pieces (two of them ``[CLS]`` and ``[SEP]``) and ignores the rest. The default
counter is that model's own WordPiece tokenizer, the ``tokenizer.json`` the packaged
encoder ships (``sluice.models``; loaded once, with its padding and truncation turned
off). Counts exclude the special tokens.

Where that file is missing, :func:`default_token_counter` falls back to
:class:`ApproxTokenCounter` and logs a warning; the counter's :attr:`name` is part of the
chunking description, so an index built with the approximation says so.

Both counters are additive over whitespace: the count of ``"a b"`` is the count of
``"a"`` plus the count of ``"b"`` (WordPiece splits words at whitespace and punctuation
before anything else), which is what lets the chunker add up sentence counts.

Example:
    >>> counter = ApproxTokenCounter()
    >>> counter.count("Refunds reach your card in 5-10 business days.")
    13
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "ApproxTokenCounter",
    "TokenCounter",
    "WordPieceCounter",
    "default_token_counter",
]

log = logging.getLogger(__name__)


@runtime_checkable
class TokenCounter(Protocol):
    """Counts tokens in text, without special tokens.

    Implementations must be additive over whitespace (module docs) and deterministic;
    ``name`` identifies the tokenizer in index metadata.
    """

    name: str

    def count(self, text: str) -> int:
        """Tokens in ``text``."""
        ...

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """Tokens in each text; one call for many is faster for real tokenizers."""
        ...


class WordPieceCounter:
    """The encoder's own tokenizer, from a ``tokenizer.json`` (Hugging Face format).

    Args:
        tokenizer_path: The ``tokenizer.json`` file.
        name: How index metadata names it.
    """

    def __init__(self, tokenizer_path: Path, *, name: str = "wordpiece") -> None:
        from tokenizers import Tokenizer  # heavy; only when a real counter is wanted

        tokenizer: Any = Tokenizer.from_file(str(tokenizer_path))
        # The packaged file pads and truncates to 128: counting needs neither.
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self._tokenizer = tokenizer
        self.name = name

    def count(self, text: str) -> int:  # noqa: D102 - the protocol documents it
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def count_many(self, texts: Sequence[str]) -> list[int]:  # noqa: D102
        if not texts:
            return []
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encodings]


_PIECES = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


class ApproxTokenCounter:
    """An estimate of WordPiece counts without a tokenizer file.

    Every punctuation mark and every CJK character is one token; a run of other word
    characters is one token per started ``chars_per_piece`` characters. With the
    default of 6 it tends to over-count English slightly (measured on the demo
    knowledge base), which keeps chunks inside the encoder's limit.

    Args:
        chars_per_piece: Characters per word piece in long words.
    """

    def __init__(self, chars_per_piece: int = 6) -> None:
        self.chars_per_piece = chars_per_piece
        self.name = f"approx-{chars_per_piece}"

    def count(self, text: str) -> int:  # noqa: D102 - the protocol documents it
        total = 0
        for piece in _PIECES.findall(text):
            cjk = len(_CJK.findall(piece))
            rest = len(piece) - cjk
            total += cjk + (math.ceil(rest / self.chars_per_piece) if rest else 0)
        return total

    def count_many(self, texts: Sequence[str]) -> list[int]:  # noqa: D102
        return [self.count(t) for t in texts]


@cache
def default_token_counter() -> TokenCounter:
    """The packaged encoder's WordPiece counter, or the approximation (module docs)."""
    try:
        # Reaches into the model plane for the tokenizer file's location only.
        from sluice.models.encoder_build import packaged_source

        return WordPieceCounter(packaged_source().tokenizer, name="wordpiece-minilm-l6")
    except Exception as exc:  # a missing package, file or tokenizers build
        log.warning("token counts are approximate: no packaged tokenizer (%s)", exc)
        return ApproxTokenCounter()
