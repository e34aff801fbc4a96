"""The packaged int8 MiniLM encoder as an embedding provider, with micro-batching.

Example:
    >>> provider = LocalEncoderProvider(load_encoder(settings))  # doctest: +SKIP
    >>> vectors, usage = provider.embed(["where is my parcel?"])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

from sluice.models.call_limits import run_with_timeout
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
                max_wait_ms=micro_batch.max_wait_ms,
                name=endpoint,
                max_in_flight=max(1, encoder.processes),
            )

    def embed(
        self, texts: Sequence[str], *, timeout_s: float | None = None
    ) -> tuple[Floats, Usage]:
        """L2-normalized embeddings; a text's row does not depend on its neighbours."""
        run = self.batcher.submit if self.batcher is not None else self.encoder.encode
        vectors = run_with_timeout(lambda: run(list(texts)), timeout_s, self.endpoint)
        return vectors, Usage()

    def close(self) -> None:
        """Stop the batcher (the encoder's processes are shared and stay)."""
        if self.batcher is not None:
            self.batcher.close()
