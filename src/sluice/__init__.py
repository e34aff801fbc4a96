"""Sluice: a runtime for governed AI business automation.

Durable pipelines that mix models, rules and people, and keep the proof of what happened
and why. The packages follow the architecture (``docs/architecture.md``):

* ``sluice.execution``: durable runs of pipelines (DBOS), intake, queues, the review gate.
* ``sluice.models``: the model plane (encoder, classifiers, registry).
* ``sluice.review``: review tasks and decisions.
* ``sluice.knowledge``, ``sluice.governance``, ``sluice.observability``: later planes.
* ``sluice.cli``, ``sluice.api``, ``sluice.web``: thin edges.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
