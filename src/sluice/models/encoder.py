"""Local sentence encoder: all-MiniLM-L6-v2 as a real int8 graph on onnxruntime, no torch.

The graph is built once per machine from files that PyPI packages carry
(:mod:`sluice.models.encoder_build`) and runs in a small pool of encoder processes
(:mod:`sluice.models.encoder_runner`), one onnxruntime thread each.

Why processes: a worker process is also busy with Python work of its own (the store,
the durable engine). Run in threads, the encoder's many short native calls wait for that
work's hold on the GIL; in processes they do not, and the worker's own Python runs
beside them. Each text runs on its own, so its embedding is the same whichever process,
chunk or batch it arrives in.

Example:
    >>> encoder = load_encoder(Settings())  # doctest: +SKIP
    >>> encoder.encode(["where is my parcel?"]).shape  # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from loky import ProcessPoolExecutor

from sluice.config import Settings
from sluice.errors import ModelError, ModelIntegrityError
from sluice.models.encoder_build import EncoderSource, build_int8, packaged_source, sha256_file
from sluice.models.encoder_runner import DIMENSIONS, Runner, embed_in_worker, init_worker
from sluice.models.registry import ModelRef

__all__ = ["ENCODER_NAME", "Encoder", "EncoderSource", "load_encoder", "packaged_source"]

Floats = npt.NDArray[np.float32]

ENCODER_NAME = "minilm-l6-int8"
#: Bump when the build recipe changes: the version names the cached artifact.
_RECIPE = "q2"
#: Most texts one encoder process takes per task.
_CHUNK = 64


class Encoder:
    """Turns texts into L2-normalized 384-d embeddings (see module docs).

    Args:
        model_path: The ONNX graph to run.
        tokenizer_path: ``tokenizer.json`` of the same model.
        version: Version string recorded in lineage.
        processes: Encoder processes; 0 runs in the calling thread instead.
        max_length: Tokens per text; longer texts are truncated (the model was trained
            with 128 in its last stage; 256 is its hard limit).
    """

    name = ENCODER_NAME

    def __init__(
        self,
        model_path: Path,
        tokenizer_path: Path,
        *,
        version: str,
        processes: int = 0,
        max_length: int = 128,
    ) -> None:
        self.version = version
        self.model_path = model_path
        self.model_sha256 = sha256_file(model_path)
        self.processes = processes
        self._args = (str(model_path), str(tokenizer_path), max_length)
        self._local = Runner(model_path, tokenizer_path, max_length) if not processes else None
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def ref(self) -> ModelRef:
        """Name and version, for lineage."""
        return ModelRef(self.name, self.version)

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # loky starts fresh interpreters (no fork: the parent runs threads, such as
                # database pools and the durable engine, that a forked child would inherit
                # in an unknown state) and, unlike multiprocessing's spawn, does not re-run
                # the caller's __main__ module, so scripts need no main guard.
                self._pool = ProcessPoolExecutor(
                    self.processes, initializer=init_worker, initargs=self._args
                )
            return self._pool

    def encode(
        self,
        texts: Sequence[str],
        *,
        progress: Callable[[int], Any] | None = None,
        timeout_s: float | None = None,
    ) -> Floats:
        """Embed ``texts``; row ``i`` belongs to ``texts[i]``.

        ``progress`` is called with the number of texts finished, chunk by chunk.
        ``timeout_s`` bounds the wait for the encoder processes: at the deadline the
        chunks not handed to a process yet are cancelled, and those that were (one per
        process, plus one) finish unread. In-process (``processes=0``) the caller's
        thread does the work and cannot be interrupted: ``timeout_s`` is not applied.

        Raises:
            ModelError: An encoder process died twice in a row (retryable).
            TimeoutError: ``timeout_s`` passed first.
        """
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        if self._local is not None:
            vectors = self._local.embed(texts)
            if progress is not None:
                progress(len(texts))
            return vectors
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        chunk = max(1, min(_CHUNK, -(-len(texts) // self.processes)))
        parts = [list(texts[i : i + chunk]) for i in range(0, len(texts), chunk)]
        try:
            return self._gather(parts, progress, deadline)
        except BrokenProcessPool:
            self.close()  # an encoder process died (OOM, kill): start fresh once
            try:
                return self._gather(parts, progress, deadline)
            except BrokenProcessPool as exc:
                self.close()
                raise ModelError(
                    "an encoder process died while embedding",
                    hint="check memory; set SLUICE_ENCODER_PROCESSES=0 to run in-process",
                ) from exc

    def _gather(
        self,
        parts: list[list[str]],
        progress: Callable[[int], Any] | None,
        deadline: float | None,
    ) -> Floats:
        pool = self._executor()
        futures: list[Future[Floats]] = [pool.submit(embed_in_worker, part) for part in parts]
        blocks = []
        for part, future in zip(parts, futures, strict=True):
            # Past the deadline it is a timeout, even if the chunk is ready: handing the
            # chunks over can itself outlast a short timeout.
            left = None if deadline is None else deadline - time.monotonic()
            try:
                if left is not None and left <= 0:
                    raise TimeoutError
                blocks.append(future.result(timeout=left))
            except TimeoutError:
                if future.done() and not future.cancelled() and future.exception() is not None:
                    raise  # the chunk's own error
                for pending in futures:
                    pending.cancel()  # the queued chunks; running ones finish unread
                raise TimeoutError(
                    f"the encoder did not embed {sum(map(len, parts))} texts in time"
                ) from None
            if progress is not None:
                progress(len(part))
        return np.concatenate(blocks)

    def close(self) -> None:
        """Stop the encoder processes (a later call starts them again)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


_CACHE: dict[tuple[str, int], Encoder] = {}
_CACHE_LOCK = threading.Lock()


def load_encoder(settings: Settings) -> Encoder:
    """The int8 encoder, built on first use and cached per process and under SLUICE_HOME."""
    source = packaged_source()
    version = f"1.0.0+{_RECIPE}"
    out_dir = settings.models_dir / "encoders" / ENCODER_NAME / version
    processes = (
        settings.encoder_processes
        if settings.encoder_processes is not None
        else min(os.cpu_count() or 1, 4)
    )
    key = (str(out_dir.resolve()), processes)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        model = out_dir / "model.onnx"
        manifest = out_dir / "manifest.json"
        if not model.exists() or not manifest.exists():
            build_int8(source, out_dir)
            manifest.write_text(
                json.dumps(
                    {
                        "name": ENCODER_NAME,
                        "version": version,
                        "source": source.package_version,
                        "source_sha256": source.model_sha256,
                        "tokenizer_sha256": source.tokenizer_sha256,
                        "sha256": sha256_file(model),
                    },
                    indent=2,
                )
            )
        recorded = json.loads(manifest.read_text())
        if sha256_file(model) != recorded["sha256"]:
            raise ModelIntegrityError(
                f"cached encoder {model} was modified after it was built",
                hint=f"delete {out_dir} and it will be rebuilt",
            )
        encoder = Encoder(model, source.tokenizer, version=version, processes=processes)
        _CACHE[key] = encoder
        return encoder
