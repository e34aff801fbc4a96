"""Alembic environment: migrations always run on a connection handed in by Sluice."""

from alembic import context

# Every plane's tables, so that `alembic check`-style comparisons see the whole store.
# This module is a leaf: nothing imports it, so these imports add no layering edge.
import sluice.execution.tables
import sluice.governance.tables
import sluice.knowledge.tables
import sluice.models.gateway_tables
import sluice.models.tables
import sluice.observability.alerts_tables
import sluice.observability.drift_tables
import sluice.review.tables  # noqa: F401
from sluice.store.base import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
