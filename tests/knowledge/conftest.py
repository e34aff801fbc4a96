"""The real token counter, loaded once: the packaged encoder's WordPiece tokenizer."""

from __future__ import annotations

import pytest

from sluice.knowledge import TokenCounter, WordPieceCounter, default_token_counter


@pytest.fixture(scope="session")
def wordpiece() -> TokenCounter:
    counter = default_token_counter()
    assert isinstance(counter, WordPieceCounter), "the packaged tokenizer must be installed"
    return counter
