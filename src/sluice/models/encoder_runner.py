"""Running the encoder graph on texts: what each encoder process does.

Each text runs through the graph on its own. With dynamic int8 quantization the
activation scale is computed per call over the whole input tensor, so batching texts
(and their padding) together would make a text's embedding depend on its neighbours
(cosine 0.98 between the same text alone and in a batch, measured here). One text per
call makes an embedding a function of the text alone, which replay and caching rely on.
Embeddings are mean-pooled over the tokens and L2-normalized, the sentence-transformers
convention for this model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Runner", "embed_in_worker", "init_worker"]

Floats = npt.NDArray[np.float32]
DIMENSIONS = 384


class Runner:
    """One onnxruntime session (one thread) and its tokenizer."""

    def __init__(self, model_path: Path, tokenizer_path: Path, max_length: int) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.enable_truncation(max_length=max_length)
        self._tokenizer.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )

    def embed(self, texts: Sequence[str]) -> Floats:
        """L2-normalized embeddings of ``texts``, one graph run per text."""
        out = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
        for row, encoding in enumerate(self._tokenizer.encode_batch(list(texts))):
            tokens = np.asarray([encoding.ids], dtype=np.int64)
            hidden = self._session.run(
                ["last_hidden_state"],
                {
                    "input_ids": tokens,
                    "attention_mask": np.ones_like(tokens),
                    "token_type_ids": np.zeros_like(tokens),
                },
            )[0][0]
            out[row] = hidden.mean(axis=0)
        out /= np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
        return out


_RUNNER: list[Runner] = []


def init_worker(model_path: str, tokenizer_path: str, max_length: int) -> None:
    """Process-pool initializer: load the session once per encoder process."""
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _RUNNER[:] = [Runner(Path(model_path), Path(tokenizer_path), max_length)]


def embed_in_worker(texts: Sequence[str]) -> Any:
    """Process-pool task: embed a chunk of texts in this encoder process."""
    return _RUNNER[0].embed(texts)
