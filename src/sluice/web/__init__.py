"""The review web app edge. Not built yet: see the HTTP API and review app issue."""

__all__: list[str] = []
