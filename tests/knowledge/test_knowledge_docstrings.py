"""The examples in the knowledge layer's docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "sluice.knowledge",
    "sluice.knowledge.documents",
    "sluice.knowledge.ingest",
    "sluice.knowledge.chunking",
    "sluice.knowledge.segments",
    "sluice.knowledge.tokens",
    "sluice.knowledge.analysis",
    "sluice.knowledge.filters",
    "sluice.knowledge.search",
    "sluice.knowledge.results",
    "sluice.knowledge.reranking",
    "sluice.knowledge.versions",
    "sluice.knowledge.keyword_sqlite",
    "sluice.knowledge.readers.common",
    "sluice.knowledge.readers.markdown",
    "sluice.knowledge.readers.html",
    "sluice.knowledge.readers.pdf",
    "sluice.knowledge.readers.plain",
    "sluice.knowledge.readers.records",
]


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
