"""The HTTP API edge (FastAPI). Not built yet: see the HTTP API and review app issue."""

__all__: list[str] = []
