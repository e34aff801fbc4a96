"""Which registry versions serve, as the gateway sees them: production, canary, pins, heads.

The gateway asks for a model's serving versions on every call. Reading the registry each
time would cost a query per call, so the answer is kept until the registry's *stage
epoch* changes (one cheap query, at most every ``SLUICE_MODEL_REFRESH_SECONDS``): a
promotion or rollback in any process reaches new calls within that interval, and at
once after :meth:`ServingVersions.refresh`. A pinned version (``SLUICE_MODEL_PINS``,
replay) is served as is, with no canary.

Example:
    >>> serving = ServingVersions(settings, registry)  # doctest: +SKIP
    >>> serving.versions("support-intent")  # doctest: +SKIP
    ('3', '4')
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from sluice.config import Settings
from sluice.models.classifier import LinearHead
from sluice.models.registry import ModelRegistry

__all__ = ["LoadedHead", "ServingVersions"]


@dataclass(frozen=True)
class LoadedHead:
    """A classifier version loaded for serving, with its calibrated gate threshold."""

    model: str
    version: str
    head: LinearHead
    threshold: float


class ServingVersions:
    """Serving versions per model name, and loaded classifier heads (module docs)."""

    def __init__(self, settings: Settings, registry: ModelRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self._serving: dict[str, tuple[str, str | None]] = {}
        self._heads: dict[tuple[str, str], LoadedHead] = {}
        self._retired: dict[tuple[str, str], bool] = {}
        self._epoch: int | None = None
        self._epoch_checked = -math.inf
        # Bumped whenever the cached answers are dropped: an answer read from the registry
        # before a drop must not be cached after it (it may predate a promotion).
        self._generation = 0
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Re-read the serving versions from the registry on the next call."""
        with self._lock:
            self._serving.clear()
            self._retired.clear()
            self._generation += 1
            self._epoch_checked = -math.inf

    def _check_epoch(self) -> None:
        """Forget what the registry said if its stage epoch moved (called under the lock)."""
        now = time.monotonic()
        if now - self._epoch_checked >= self.settings.model_refresh_seconds:
            epoch = self.registry.stage_epoch()
            self._epoch_checked = now
            if epoch != self._epoch:
                self._epoch = epoch
                self._serving.clear()
                self._retired.clear()
                self._generation += 1

    def retired(self, model: str, version: str) -> bool:
        """Whether a person retired ``model@version`` (a kill switch for served models)."""
        with self._lock:
            self._check_epoch()
            found = self._retired.get((model, version))
            generation = self._generation
        if found is None:
            found = self.registry.is_retired(model, version)
            with self._lock:
                if generation == self._generation:
                    self._retired[(model, version)] = found
        return found

    def versions(self, model: str) -> tuple[str, str | None]:
        """(production version, canary version or None) of ``model``, or its pin.

        Raises:
            ModelNotFoundError: ``model`` has no production version.
        """
        pinned = self.settings.model_pins.get(model)
        if pinned is not None:
            return pinned, None
        with self._lock:
            self._check_epoch()
            found = self._serving.get(model)
            generation = self._generation
        if found is None:
            serving = self.registry.serving(model)
            found = (serving.production.version, serving.canary.version if serving.canary else None)
            with self._lock:
                if generation == self._generation:
                    self._serving[model] = found
        return found

    def head(self, model: str, version: str) -> LoadedHead:
        """A registered classifier version, loaded once per process.

        Raises:
            ModelNotFoundError: No such version.
            ModelIntegrityError: Its artifact does not match its sha256.
        """
        key = (model, version)
        with self._lock:
            found = self._heads.get(key)
        if found is None:
            from sluice.models.training import load_classifier

            record, head, calibration = load_classifier(self.registry, model, version)
            found = LoadedHead(
                record.name,
                record.version,
                head,
                calibration.threshold(self.settings.target_precision),
            )
            with self._lock:
                self._heads[key] = found
        return found
