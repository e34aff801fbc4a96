"""The packaged int8 MiniLM encoder as an embedding provider, with micro-batching.

A call's timeout costs no thread of its own: the caller waits, with the deadline, on the
encoder processes' futures or on its micro-batch. Only an in-process encoder
(``SLUICE_ENCODER_PROCESSES=0``), whose work runs in a Python thread that cannot be
interrupted, runs calls on a few standing threads (:class:`DeadlineWorkers`).

Example:
    >>> provider = LocalEncoderProvider(load_encoder(settings))  # doctest: +SKIP
    >>> vectors, usage = provider.embed(["where is my parcel?"])  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from sluice.models.call_limits import DeadlineWorkers, timeout_error
from sluice.models.calls import Usage
from sluice.models.encoder import Encoder
from sluice.models.gateway_config import MicroBatchSpec
from sluice.models.micro_batching import MicroBatcher
from sluice.models.providers.base import Floats

__all__ = ["LocalEncoderProvider"]


class LocalEncoderProvider:
    """Embeddings from the local encoder (see :mod:`sluice.models.encoder`).

    Args:
        encoder: The loaded encoder (its processes are shared per process).
        micro_batch: Batch concurrent small calls (None: every call goes alone).
        endpoint: The endpoint's name (for timeouts' messages).
    """

    def __init__(
        self,
        encoder: Encoder,
        *,
        micro_batch: MicroBatchSpec | None = None,
        endpoint: str = "minilm",
    ) -> None:
        self.encoder = encoder
        self.model = encoder.name
        self.version = encoder.version
        self.endpoint = endpoint
        self.batcher: MicroBatcher[Floats] | None = None
        if micro_batch is not None and micro_batch.max_wait_ms > 0:
            self.batcher = MicroBatcher(
                encoder.encode,
                max_batch=micro_batch.max_batch,
                name=endpoint,
                # One batch per encoder process: the next is queued while one runs.
                max_in_flight=max(1, encoder.processes),
            )
        self._workers: DeadlineWorkers | None = None
        if not encoder.processes:
            self._workers = DeadlineWorkers(endpoint, workers=min(os.cpu_count() or 1, 4))

    def embed(
        self, texts: Sequence[str], *, timeout_s: float | None = None
    ) -> tuple[Floats, Usage]:
        """L2-normalized embeddings; a text's row does not depend on its neighbours.

        Raises:
            ModelTimeoutError: No embeddings within ``timeout_s``.
        """
        texts = list(texts)
        if timeout_s is not None and timeout_s <= 0:
            raise timeout_error(self.endpoint, timeout_s)
        try:
            if self.batcher is not None and len(texts) < self.batcher.max_batch:
                vectors: Floats = self.batcher.submit(texts, timeout_s=timeout_s)
            elif self._workers is not None:
                vectors = self._workers.run(lambda: self.encoder.encode(texts), timeout_s)
            else:
                vectors = self.encoder.encode(texts, timeout_s=timeout_s)
        except TimeoutError:
            if timeout_s is None:
                raise
            raise timeout_error(self.endpoint, timeout_s) from None
        return vectors, Usage()

    def close(self) -> None:
        """Stop the batcher and the standing threads (the encoder's processes stay)."""
        if self.batcher is not None:
            self.batcher.close()
        if self._workers is not None:
            self._workers.close()
