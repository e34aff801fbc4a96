"""The review web app: server-rendered pages for reviewers, auditors and operators.

Mounted by :func:`sluice.api.create_app` at ``/`` beside the API; see :mod:`.pages`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

__all__ = ["mount"]


def mount(app: FastAPI) -> None:
    """Add the pages, their static files and the sign-in redirect to ``app``."""
    from sluice.web.pages import _CrossSiteError, _SignInRequiredError, router, sign_in_redirect

    app.include_router(router)
    app.mount(
        "/static", StaticFiles(directory=str(Path(__file__).with_name("static"))), name="web-static"
    )

    async def to_sign_in(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _SignInRequiredError)
        return sign_in_redirect(exc.target)

    async def cross_site(_request: Request, _exc: Exception) -> Response:
        return PlainTextResponse("cross-site form posts are refused", status_code=403)

    app.add_exception_handler(_SignInRequiredError, to_sign_in)
    app.add_exception_handler(_CrossSiteError, cross_site)
