"""The HTTP edge: a FastAPI app serving the API (``/v1``) and the review app (``/``).

Start it with ``sluice serve``; build it in code with :func:`create_app`.
"""

from sluice.api.app import create_app

__all__ = ["create_app"]
