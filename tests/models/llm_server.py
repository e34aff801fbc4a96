"""Real llama.cpp servers for LLM tests: ``python -m llama_cpp.server`` on a free port.

The servers run the packaged SmolLM2-135M-Instruct GGUF (98 MB, from ``sluice[llm]``);
one starts in about a second and generates ~40-50 tokens/s on 2 cores. Its replies are
poor: these servers test plumbing, not answers. Where ``llama_cpp`` is not installed the
fixtures skip, so ``make test`` stays fast there; CI installs the extra.

Run as a script, this file is llama-cpp-python's own server with one change:
``--pooling mean`` makes every ``Llama`` it loads mean-pool embeddings. The stock server
(0.3.36) has no pooling option and, for a generative GGUF such as SmolLM2, answers
``/v1/embeddings`` with per-token vectors (misaligned for batches), so pooled embeddings
over HTTP need this.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, NamedTuple

import httpx
import pytest

#: How long a server may take to answer ``GET /v1/models`` (it takes ~1 s).
START_TIMEOUT_S = 60.0
#: The key of the server that checks one (``--api_key``).
TEST_API_KEY = "sluice-test-key-5f2c"


class EmbeddingServer(NamedTuple):
    """A server with pooled embeddings that checks an API key."""

    base_url: str
    api_key: str


def require_llm_extra() -> Path:
    """The packaged GGUF, or skip the test when ``sluice[llm]`` is not installed."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama_cpp is not importable: install the extra with pip install '.[llm]'")
    from sluice.errors import MissingDependencyError
    from sluice.models.providers import packaged_gguf

    try:
        return packaged_gguf()
    except MissingDependencyError as exc:
        pytest.skip(f"{exc}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def run_llm_server(
    *args: str, pooling: str | None = None, api_key: str | None = None
) -> Iterator[str]:
    """Start a llama.cpp server on the packaged GGUF; yields its ``.../v1`` base URL.

    Args:
        *args: More server options (``--embedding``, ``true`` ...).
        pooling: ``mean`` to start this file's pooling variant of the server.
        api_key: The key the server requires (``--api_key``); None requires none.
    """
    gguf = require_llm_extra()
    port = free_port()
    launcher = (
        [str(Path(__file__)), "--pooling", pooling] if pooling else ["-m", "llama_cpp.server"]
    )
    command = [
        sys.executable,
        *launcher,
        *("--model", str(gguf), "--host", "127.0.0.1", "--port", str(port)),
        *("--n_ctx", "2048", *args),
        *(("--api_key", api_key) if api_key else ()),
    ]
    base_url = f"http://127.0.0.1:{port}/v1"
    # The log goes to a file: a pipe nobody reads would block the server once full.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_until_ready(process, base_url, log, api_key)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def _wait_until_ready(
    process: subprocess.Popen[bytes], base_url: str, log: IO[bytes], api_key: str | None
) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(timeout=2.0, headers=headers) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"llama.cpp server exited with {process.returncode}:\n{_tail(log)}")
            try:
                if client.get(f"{base_url}/models").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    pytest.fail(f"llama.cpp server not ready after {START_TIMEOUT_S:g} s:\n{_tail(log)}")


def _tail(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-3000:]


@pytest.fixture(scope="session")
def llm_server() -> Iterator[str]:
    """A llama.cpp server (chat completions) for the session; yields ``http://.../v1``."""
    with run_llm_server() as base_url:
        yield base_url


@pytest.fixture(scope="session")
def llm_embedding_server() -> Iterator[EmbeddingServer]:
    """A llama.cpp server with mean-pooled embeddings that requires ``TEST_API_KEY``."""
    with run_llm_server("--embedding", "true", pooling="mean", api_key=TEST_API_KEY) as url:
        yield EmbeddingServer(url, TEST_API_KEY)


def _serve_with_pooling() -> None:
    """Entry point of the pooling variant: ``llm_server.py --pooling mean <server args>``."""
    import llama_cpp
    from llama_cpp.server.__main__ import main

    pooling = sys.argv.pop(sys.argv.index("--pooling") + 1)
    sys.argv.remove("--pooling")
    pooling_type = {"mean": llama_cpp.LLAMA_POOLING_TYPE_MEAN}[pooling]

    class PoolingLlama(llama_cpp.Llama):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("pooling_type", pooling_type)
            super().__init__(*args, **kwargs)

    # The server builds its model with `llama_cpp.Llama(...)`: that now pools.
    llama_cpp.Llama = PoolingLlama
    main()


if __name__ == "__main__":
    _serve_with_pooling()
