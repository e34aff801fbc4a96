"""``app`` built from the environment, for ``uvicorn sluice.api.factory:app`` and workers."""

from sluice.api.app import create_app
from sluice.config import get_settings

app = create_app(get_settings())
