"""The knowledge layer: ingest, chunk, embed, hybrid search with citations.

Not built yet: see the knowledge-layer issue. Nothing in Sluice calls it today.
"""

__all__: list[str] = []
