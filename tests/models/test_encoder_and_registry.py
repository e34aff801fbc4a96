from pathlib import Path

import numpy as np
import pytest

from sluice.config import Settings
from sluice.errors import ModelIntegrityError, ModelNotFoundError
from sluice.models import ModelRegistry, load_encoder
from sluice.store import open_store


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory, model_cache: Path):  # type: ignore[no-untyped-def]
    return load_encoder(Settings(home=tmp_path_factory.mktemp("h"), model_cache=model_cache))


def test_the_encoder_is_a_real_int8_graph(encoder, model_cache: Path) -> None:  # type: ignore[no-untyped-def]
    import onnx

    graph = onnx.load(str(next(model_cache.glob("encoders/*/*/model.onnx"))))
    ops = {n.op_type for n in graph.graph.node}
    assert "MatMulInteger" in ops, "dynamic quantization produced integer matmuls"
    assert encoder.ref.name == "minilm-l6-int8"


def test_embeddings_are_normalized_and_meaningful(encoder) -> None:  # type: ignore[no-untyped-def]
    texts = ["Where is my parcel?", "My package has not arrived yet", "I forgot my password"]
    vectors = encoder.encode(texts)
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    same, different = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert same > different + 0.2, (same, different)


def test_batching_does_not_change_embeddings(encoder) -> None:  # type: ignore[no-untyped-def]
    texts = ["short", "a somewhat longer sentence about a refund", "mid length text here"]
    together = encoder.encode(texts)
    alone = np.vstack([encoder.encode([t]) for t in texts])
    assert np.array_equal(together, alone), "a text's embedding depends on the text alone"


def test_a_tampered_cache_is_refused(tmp_path: Path, encoder) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(home=tmp_path, model_cache=tmp_path / "cache")
    load_encoder(settings)
    model = next((tmp_path / "cache").glob("encoders/*/*/model.onnx"))
    model.write_bytes(model.read_bytes()[:-10] + b"0123456789")
    from sluice.models import encoder as encoder_module

    encoder_module._CACHE.clear()
    with pytest.raises(ModelIntegrityError, match="modified after it was built"):
        load_encoder(settings)


def test_registry_versions_stages_and_integrity(settings: Settings) -> None:
    store = open_store(settings)
    registry = ModelRegistry(store)
    first = registry.register("m", "classifier", b"one", {"a": 1})
    second = registry.register("m", "classifier", b"two", {"a": 2})
    assert (first.version, first.stage) == ("1", "production")
    assert (second.version, second.stage) == ("2", "candidate")
    assert registry.production("m").version == "1"
    third = registry.register("m", "classifier", b"three", {"a": 3}, promote=True)
    assert registry.production("m").version == third.version == "3"
    assert registry.get("m", "1").stage == "retired"
    assert registry.find("m", a=2) == registry.get("m", "2")
    assert registry.artifact_path("m", "2").read_bytes() == b"two"
    with pytest.raises(ModelNotFoundError, match="no model m@9"):
        registry.get("m", "9")
    with store.begin() as conn:
        from sqlalchemy import update

        from sluice.models.tables import model_versions

        conn.execute(
            update(model_versions).where(model_versions.c.version == "1").values(artifact=b"forged")
        )
    with pytest.raises(ModelIntegrityError):
        registry.artifact_path("m", "1")
    store.dispose()
