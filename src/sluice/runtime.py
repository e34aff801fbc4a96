"""The composition root: what one Sluice process is made of.

Edges (CLI, API) build a :class:`Runtime` and call the planes through it. It validates
the model gateway's configuration, opens the store (migrating it if needed), declares the
pipelines (the reference ones, those named
in ``SLUICE_PIPELINE_MODULES`` and those of installed packages' ``sluice.pipelines``
entry points), and plugs the review plane into the execution plane's review gate.

Example:
    >>> with Runtime(Settings()) as rt:  # doctest: +SKIP
    ...     rt.worker().run(drain=True)
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from types import TracebackType

from sluice.config import Settings
from sluice.errors import ConfigError
from sluice.execution import Pipeline, Worker, get_pipeline, registered_pipelines, set_review_desk
from sluice.models import ModelRegistry, load_gateway_config, set_budget_alert_hook
from sluice.observability import AlertChannel
from sluice.review import TaskDesk
from sluice.store import Store, open_store

__all__ = ["Runtime"]


def _declare_pipelines(settings: Settings) -> None:
    import sluice.pipelines  # noqa: F401  (the reference pipelines)

    for module in settings.pipeline_modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(
                f"cannot import pipeline module {module!r}: {exc}",
                hint="check SLUICE_PIPELINE_MODULES",
            ) from exc
    for entry in entry_points(group="sluice.pipelines"):
        entry.load()


class Runtime:
    """Settings, store, pipelines and the review desk of one process (module docs)."""

    def __init__(self, settings: Settings, *, migrate: bool = True) -> None:
        self.settings = settings
        _declare_pipelines(settings)
        set_review_desk(TaskDesk())
        # Checked at start-up: a mistake in the models config stops every command and
        # worker at once, with its path in the file, not at the first model call.
        self.gateway_config = load_gateway_config(settings.models_config)
        self.store: Store = open_store(settings, migrate=migrate)
        self.models = ModelRegistry(self.store)
        # One alert channel per process: drift monitors and the gateway's soft budget
        # limits alert through it (the model plane only knows a hook).
        self.alerts = AlertChannel.from_settings(self.store, settings)
        self._previous_budget_hook = set_budget_alert_hook(self.alerts.budget_alert)

    def pipeline(self, name: str) -> Pipeline:
        """A declared pipeline by name."""
        return get_pipeline(name)

    def pipelines(self) -> list[Pipeline]:
        """Every declared pipeline."""
        return list(registered_pipelines().values())

    def worker(self, names: list[str] | None = None, *, concurrency: int | None = None) -> Worker:
        """A worker for the named pipelines (default: all)."""
        chosen = [self.pipeline(n) for n in names] if names else self.pipelines()
        return Worker(self.settings, self.store, chosen, concurrency=concurrency)

    def close(self) -> None:
        """Finish alert deliveries (briefly) and release database connections."""
        set_budget_alert_hook(self._previous_budget_hook)
        self.alerts.close(timeout_s=self.settings.alert_webhook_timeout_seconds)
        self.store.dispose()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
