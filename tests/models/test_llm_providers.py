"""LLM providers against real llama.cpp: its OpenAI-compatible server and in-process.

Tests marked ``llm`` use the servers of llm_server.py (or load the GGUF in-process) and
skip where ``sluice[llm]`` is not installed. The secrets reader, the GGUF helpers and the
behaviour against a closed port need no model and always run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from llm_server import EmbeddingServer, free_port, require_llm_extra, run_llm_server

from sluice.config import Settings, read_secret
from sluice.errors import (
    ConfigError,
    MissingDependencyError,
    ModelCallError,
    ModelTimeoutError,
    SluiceError,
)
from sluice.models.calls import ChatMessage, ChatParams
from sluice.models.providers import (
    ChatProvider,
    EmbeddingProvider,
    LlamaCppProvider,
    OpenAICompatibleProvider,
    file_sha256,
    packaged_gguf,
)

SECRET = "sk-live-DO-NOT-LEAK-7c1e"
QUESTION = [
    ChatMessage("system", "You are a helpful assistant. Answer briefly."),
    ChatMessage("user", "What is the capital of France?"),
]
#: SmolLM2 does not stop on its own for this one: generation runs to max_tokens.
LONG = [ChatMessage("user", "Write a long story about a dragon.")]


def _leaks(error: BaseException, secret: str = SECRET) -> bool:
    texts = [str(error), repr(error), error.args.__repr__()]
    if isinstance(error, SluiceError):
        texts.append(repr(error.to_dict()))
    return any(secret in text for text in texts)


@pytest.fixture
def http_llm(llm_server: str) -> Iterator[OpenAICompatibleProvider]:
    with OpenAICompatibleProvider("smollm", llm_server, "smollm2", api_key=SECRET) as provider:
        yield provider


@pytest.fixture(scope="module")
def local_llm() -> Iterator[LlamaCppProvider]:
    require_llm_extra()
    provider = LlamaCppProvider(endpoint="local")
    yield provider
    provider.close()


# -- OpenAI-compatible HTTP provider against llama.cpp's server ---------------------------


@pytest.mark.llm
def test_chat_completion_over_the_server(http_llm: OpenAICompatibleProvider) -> None:
    assert isinstance(http_llm, ChatProvider)
    assert isinstance(http_llm, EmbeddingProvider)
    reply = http_llm.chat(QUESTION, ChatParams(max_tokens=32))
    assert reply.text.strip()
    assert reply.usage.input_tokens > 10
    assert 0 < reply.usage.output_tokens <= 32
    assert reply.finish_reason in {"stop", "length"}
    # llama.cpp's server returns token logprobs when asked with top_logprobs.
    assert reply.confidence is not None
    assert 0.0 < reply.confidence <= 1.0
    # Greedy at temperature 0: the same question gets the same answer.
    assert http_llm.chat(QUESTION, ChatParams(max_tokens=32)) == reply


@pytest.mark.llm
def test_max_tokens_and_stop_are_sent(http_llm: OpenAICompatibleProvider) -> None:
    short = http_llm.chat(LONG, ChatParams(max_tokens=4))
    assert short.finish_reason == "length"
    assert short.usage.output_tokens == 4
    full = http_llm.chat(LONG, ChatParams(max_tokens=24))
    word = full.text.split()[3]
    stopped = http_llm.chat(LONG, ChatParams(max_tokens=24, stop=(word,)))
    assert word not in stopped.text
    assert full.text.startswith(stopped.text)


@pytest.mark.llm
def test_confidence_is_none_without_logprobs(llm_server: str) -> None:
    with OpenAICompatibleProvider("smollm", llm_server, "m", request_logprobs=False) as provider:
        reply = provider.chat(QUESTION, ChatParams(max_tokens=8))
    assert reply.text
    assert reply.confidence is None


@pytest.mark.llm
def test_a_call_past_its_timeout_raises_model_timeout(http_llm: OpenAICompatibleProvider) -> None:
    # Real generation takes far longer than 20 ms (the server keeps generating the 32
    # tokens afterwards; later tests wait for it within their timeouts).
    started = time.monotonic()
    with pytest.raises(ModelTimeoutError) as caught:
        http_llm.chat(LONG, ChatParams(max_tokens=32), timeout_s=0.02)
    assert time.monotonic() - started < 3.0  # generous: the machine may be loaded
    assert caught.value.endpoint == "smollm"
    assert caught.value.retryable
    assert "0.02 s" in str(caught.value)
    assert not _leaks(caught.value)


@pytest.mark.llm
def test_the_per_call_timeout_overrides_the_default(llm_server: str) -> None:
    with OpenAICompatibleProvider("smollm", llm_server, "m", timeout_s=0.02) as provider:
        with pytest.raises(ModelTimeoutError):
            provider.chat(LONG, ChatParams(max_tokens=32))
        assert provider.chat(QUESTION, ChatParams(max_tokens=8), timeout_s=60).text


def test_a_closed_port_raises_a_retryable_model_call_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with OpenAICompatibleProvider("gone", url, "m", api_key=SECRET) as provider:
        with pytest.raises(ModelCallError) as caught:
            provider.chat(QUESTION, ChatParams())
        with pytest.raises(ModelCallError):
            provider.embed(["hello"])
    error = caught.value
    assert not isinstance(error, ModelTimeoutError)
    assert error.retryable
    assert error.endpoint == "gone"
    assert "ConnectError" in str(error) and url in str(error)
    assert error.hint and "reachable" in error.hint
    assert not _leaks(error)


@pytest.mark.llm
def test_a_client_error_carries_the_servers_message(http_llm: OpenAICompatibleProvider) -> None:
    too_long = [ChatMessage("user", "word " * 3000)]
    with pytest.raises(ModelCallError) as caught:
        http_llm.chat(too_long, ChatParams(max_tokens=16))
    assert "HTTP 400" in str(caught.value)
    assert "maximum context length is 2048 tokens" in str(caught.value)
    assert not _leaks(caught.value)


@pytest.mark.llm
def test_a_wrong_base_url_says_so(llm_server: str) -> None:
    root = llm_server.removesuffix("/v1")  # forgot the /v1
    with (
        OpenAICompatibleProvider("smollm", root, "m") as provider,
        pytest.raises(ModelCallError) as caught,
    ):
        provider.chat(QUESTION, ChatParams(max_tokens=4))
    assert "HTTP 404" in str(caught.value)
    assert caught.value.hint and "/v1" in caught.value.hint


@pytest.mark.llm
def test_a_server_error_is_a_model_call_error(http_llm: OpenAICompatibleProvider) -> None:
    # This server was started without --embedding: llama.cpp answers 500.
    with pytest.raises(ModelCallError) as caught:
        http_llm.embed(["hello"])
    assert "HTTP 500" in str(caught.value)
    assert "embedding=True" in str(caught.value)
    assert caught.value.retryable


@pytest.mark.llm
def test_embeddings_are_normalized_float32_rows(llm_embedding_server: EmbeddingServer) -> None:
    url, key = llm_embedding_server
    with OpenAICompatibleProvider("smollm-embed", url, "m", api_key=key) as provider:
        texts = ["where is my parcel?", "I want a refund", "where is my parcel?"]
        vectors, usage = provider.embed(texts)
        alone, _ = provider.embed(["I want a refund"])
        empty, no_usage = provider.embed([])
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, 576)  # SmolLM2-135M's hidden size
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)
    np.testing.assert_allclose(vectors[1], alone[0], atol=1e-4)  # rows do not mix
    assert float(vectors[0] @ vectors[1]) < 0.999
    assert usage.input_tokens > 0 and usage.output_tokens == 0
    assert empty.shape[0] == 0 and no_usage.input_tokens == 0


@pytest.mark.llm
def test_the_api_key_is_sent_and_a_wrong_one_refused(
    llm_embedding_server: EmbeddingServer, caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = llm_embedding_server
    caplog.set_level(logging.DEBUG)
    with OpenAICompatibleProvider("smollm-embed", url, "m", api_key=SECRET) as provider:
        with pytest.raises(ModelCallError) as caught:
            provider.embed(["hello"])
        assert SECRET not in repr(provider) and SECRET not in str(provider)
    assert "HTTP 401" in str(caught.value)
    assert caught.value.hint and "API key" in caught.value.hint
    assert not _leaks(caught.value)
    assert SECRET not in caplog.text
    with (
        OpenAICompatibleProvider("smollm-embed", url, "m") as provider,
        pytest.raises(ModelCallError, match="HTTP 401"),
    ):
        provider.embed(["hello"])


@pytest.mark.llm
def test_per_token_embeddings_are_refused() -> None:
    # The stock server with --embedding does not pool a generative model's vectors.
    with (
        run_llm_server("--embedding", "true") as url,
        OpenAICompatibleProvider("smollm-tokens", url, "m") as provider,
        pytest.raises(ModelCallError, match="per-token embeddings"),
    ):
        provider.embed(["hello", "world"])


@pytest.mark.llm
def test_the_api_key_never_shows(
    http_llm: OpenAICompatibleProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert SECRET not in repr(http_llm)
    assert "api_key=***" in repr(http_llm)
    assert SECRET not in repr(vars(http_llm))
    assert http_llm.chat(QUESTION, ChatParams(max_tokens=4)).text  # the server accepts any
    for call in (
        lambda: http_llm.chat(QUESTION, ChatParams(max_tokens=32), timeout_s=0.02),
        lambda: http_llm.chat([ChatMessage("user", "x " * 3000)], ChatParams()),
    ):
        with pytest.raises(ModelCallError) as caught:
            call()
        assert not _leaks(caught.value)
    assert SECRET not in caplog.text


# -- llama.cpp in-process ----------------------------------------------------------------


@pytest.mark.llm
def test_the_local_provider_answers(local_llm: LlamaCppProvider) -> None:
    assert isinstance(local_llm, ChatProvider)
    assert local_llm.version == file_sha256(packaged_gguf())[:12]
    assert local_llm.model == "SmolLM2-135M-Instruct.Q4_1"
    reply = local_llm.chat(QUESTION, ChatParams(max_tokens=32))
    assert reply.text.strip()
    assert reply.usage.input_tokens > 10 and 0 < reply.usage.output_tokens <= 32
    assert reply.finish_reason in {"stop", "length"}
    assert reply.confidence is not None and 0.0 < reply.confidence <= 1.0
    assert local_llm.chat(QUESTION, ChatParams(max_tokens=32)) == reply


@pytest.mark.llm
def test_local_and_server_agree(
    local_llm: LlamaCppProvider, http_llm: OpenAICompatibleProvider
) -> None:
    local = local_llm.chat(QUESTION, ChatParams(max_tokens=24))
    served = http_llm.chat(QUESTION, ChatParams(max_tokens=24))
    assert local.text == served.text
    assert local.usage == served.usage
    assert local.confidence == pytest.approx(served.confidence, abs=0.02)


@pytest.mark.llm
def test_sampling_has_no_confidence_and_follows_the_seed(local_llm: LlamaCppProvider) -> None:
    params = ChatParams(max_tokens=16, temperature=0.9, seed=7)
    first = local_llm.chat(LONG, params)
    assert first.confidence is None
    assert local_llm.chat(LONG, params).text == first.text


@pytest.mark.llm
def test_the_local_provider_stops_at_its_timeout(local_llm: LlamaCppProvider) -> None:
    started = time.monotonic()
    with pytest.raises(ModelTimeoutError) as caught:
        local_llm.chat(LONG, ChatParams(max_tokens=1000), timeout_s=0.3)
    elapsed = time.monotonic() - started
    # 1000 tokens take 20 s or more; the prompt and one last token take well under 10 s
    # even on a 2-core machine loaded by other test suites (6.2 s was seen).
    assert elapsed < 10.0, f"generation went on for {elapsed:.2f} s"
    assert caught.value.endpoint == "local"
    assert "generating" in str(caught.value)


@pytest.mark.llm
def test_the_local_provider_serves_threads_one_at_a_time(local_llm: LlamaCppProvider) -> None:
    expected = local_llm.chat(QUESTION, ChatParams(max_tokens=16))
    results: list[object] = []

    def ask() -> None:
        try:
            results.append(local_llm.chat(QUESTION, ChatParams(max_tokens=16), timeout_s=60))
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert results == [expected] * 3

    # A call that cannot get the model in time waits no longer than its timeout.
    busy = threading.Thread(
        target=lambda: local_llm.chat(LONG, ChatParams(max_tokens=60), timeout_s=30)
    )
    busy.start()
    time.sleep(0.2)
    try:
        with pytest.raises(ModelTimeoutError, match="waiting for the model"):
            local_llm.chat(QUESTION, ChatParams(max_tokens=4), timeout_s=0.1)
    finally:
        busy.join(60)


@pytest.mark.llm
def test_the_local_provider_reports_llama_errors_and_bad_files(
    local_llm: LlamaCppProvider, tmp_path: Path
) -> None:
    with pytest.raises(ModelCallError, match="n_ctx"):
        local_llm.chat([ChatMessage("user", "word " * 3000)], ChatParams(max_tokens=8))
    with pytest.raises(ConfigError, match="does not exist"):
        LlamaCppProvider(tmp_path / "missing.gguf")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="cannot load"):
        LlamaCppProvider(junk)


@pytest.mark.llm
def test_a_closed_local_provider_refuses_calls() -> None:
    require_llm_extra()
    provider = LlamaCppProvider(version="v-test")
    assert provider.version == "v-test"
    provider.close()
    with pytest.raises(ModelCallError, match="closed"):
        provider.chat(QUESTION, ChatParams(max_tokens=4))


# -- without a model ---------------------------------------------------------------------


def test_without_llama_cpp_the_local_provider_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp now fails
    with pytest.raises(MissingDependencyError) as caught:
        LlamaCppProvider()
    assert caught.value.hint == "pip install 'sluice[llm]'"


def test_without_the_package_there_is_no_packaged_gguf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # not installed
    with pytest.raises(MissingDependencyError) as caught:
        packaged_gguf()
    assert caught.value.hint == "pip install 'sluice[llm]'"


def test_file_sha256_is_cached_per_modification(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"one")
    assert file_sha256(path) == hashlib.sha256(b"one").hexdigest()
    path.write_bytes(b"two!")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert file_sha256(str(path)) == hashlib.sha256(b"two!").hexdigest()


def test_the_repr_hides_the_key_and_url_credentials() -> None:
    provider = OpenAICompatibleProvider(
        "hosted", "https://user:pw-123@llm.example/v1/", "m", api_key=SECRET
    )
    try:
        text = repr(provider)
        assert SECRET not in text and "pw-123" not in text
        assert "api_key=***" in text and "https://llm.example/v1" in text
        assert SECRET not in repr(provider._client.headers)  # httpx masks it too
    finally:
        provider.close()
    assert "api_key=None" in repr(OpenAICompatibleProvider("x", "http://h/v1", "m"))


def test_a_bad_reply_shape_is_a_model_call_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>a proxy page</html>")

    provider = OpenAICompatibleProvider("proxy", "http://127.0.0.1:9/v1", "m")
    # The network is the edge of the world: swap the transport, keep the provider.
    provider._client.close()
    provider._client = httpx.Client(transport=httpx.MockTransport(handler))
    with provider, pytest.raises(ModelCallError, match="unexpected chat/completions response"):
        provider.chat(QUESTION, ChatParams())


# -- secrets -----------------------------------------------------------------------------


def test_the_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.env"
    secrets.write_text("MY_KEY=from-file\n")
    monkeypatch.setenv("MY_KEY", "from-env")
    assert read_secret(Settings(secrets_file=secrets), "MY_KEY") == "from-env"
    monkeypatch.setenv("MY_KEY", "")  # empty counts as absent
    assert read_secret(Settings(secrets_file=secrets), "MY_KEY") == "from-file"


def test_a_key_value_secrets_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    monkeypatch.delenv("OTHER", raising=False)
    secrets = tmp_path / ".env"
    secrets.write_text(
        "# model endpoints\n\nexport VLLM_API_KEY = 'sk-one=two'\nOTHER=\"quoted\"\n"
        "VLLM_API_KEY=sk-last\n"
    )
    settings = Settings()
    assert read_secret(settings, "VLLM_API_KEY", secrets) == "sk-last"
    assert read_secret(settings, "OTHER", secrets) == "quoted"
    secrets.write_text("export VLLM_API_KEY = 'sk-one=two'\n")
    assert read_secret(settings, "VLLM_API_KEY", secrets) == "sk-one=two"


def test_a_toml_secrets_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('VLLM_API_KEY = "sk-toml"\nPORT = 8000\n')
    settings = Settings(secrets_file=secrets)
    assert read_secret(settings, "VLLM_API_KEY") == "sk-toml"
    with pytest.raises(ConfigError, match="must be a string"):
        read_secret(settings, "PORT")
    secrets.write_text(f'VLLM_API_KEY = "{SECRET}\n')
    with pytest.raises(ConfigError, match="not valid TOML") as caught:
        read_secret(settings, "VLLM_API_KEY")
    assert not _leaks(caught.value)


def test_secrets_file_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    secrets = tmp_path / "secrets.env"
    secrets.write_text("VLLM_API_KEY=sk-env-file\n")
    monkeypatch.setenv("SLUICE_SECRETS_FILE", str(secrets))
    assert Settings().secrets_file == secrets
    assert read_secret(Settings(), "VLLM_API_KEY") == "sk-env-file"


def test_missing_secrets_say_where_to_put_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    with pytest.raises(ConfigError) as caught:
        read_secret(Settings(), "VLLM_API_KEY")
    assert "VLLM_API_KEY" in str(caught.value)
    assert caught.value.hint and "SLUICE_SECRETS_FILE" in caught.value.hint
    secrets = tmp_path / "secrets.env"
    secrets.write_text("OTHER=1\n")
    with pytest.raises(ConfigError, match="is not set"):
        read_secret(Settings(secrets_file=secrets), "VLLM_API_KEY")
    with pytest.raises(ConfigError, match="cannot be read"):
        read_secret(Settings(secrets_file=tmp_path / "nope.env"), "VLLM_API_KEY")


def test_a_malformed_line_is_reported_without_its_content(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"# keys\n{SECRET}\n")
    with pytest.raises(ConfigError, match="line 2: expected KEY=value") as caught:
        read_secret(Settings(secrets_file=secrets), "VLLM_API_KEY")
    assert not _leaks(caught.value)
