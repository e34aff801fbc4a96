"""The review web app: server-rendered pages for reviewers, auditors and operators.

Mounted by :func:`sluice.api.create_app`; not built yet beyond this placeholder mount.
"""

from __future__ import annotations

from typing import Any

__all__ = ["mount"]


def mount(app: Any) -> None:
    """Add the web app's routes to ``app`` (none yet)."""
