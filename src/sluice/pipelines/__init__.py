"""Reference pipelines, written with the public API of the planes.

Importing this package declares them: ``support-triage`` today, invoice processing later.
"""

from sluice.pipelines import support_triage

__all__ = ["support_triage"]
