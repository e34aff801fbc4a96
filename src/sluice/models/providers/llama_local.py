"""A GGUF chat model run in-process by llama.cpp (``sluice[llm]``).

:class:`LlamaCppProvider` loads one GGUF file with ``llama_cpp.Llama`` (imported only
here, when the provider is made) and answers chat calls one at a time: a ``Llama``
object is not thread-safe, so calls from several threads queue on a lock, and the wait
for it counts against the call's timeout.

Timeouts are cooperative. ``create_chat_completion`` takes no stopping criterion, so a
logits processor, which runs before each token is chosen, watches the deadline: once it
has passed, only end-of-sequence is left to choose, generation ends after that token,
and the call raises :class:`~sluice.errors.ModelTimeoutError`. Evaluating the prompt is
not interrupted (a full 2048-token context takes a few seconds for the packaged 135M
model on 2 cores).

Each call evaluates its prompt afresh. llama.cpp would otherwise reuse the cached prefix
of the previous prompt and re-evaluate only the last token, which changes the logits in
the last bits: enough for the same seed to sample another reply. Resetting costs the
prompt's evaluation (~30 ms for a short chat) and buys replies that depend only on the
call, as the response cache and replays assume.

Confidence: at temperature 0 (greedy, what the response cache assumes) the chosen token
is the most likely one, so its log-probability is ``max(logits) - logsumexp(logits)``,
recorded by a logits processor at each step; :attr:`ChatReply.confidence` is
``exp(mean logprob)`` over the reply's tokens, the same figure llama.cpp's server gives
through the HTTP provider. At a temperature above 0 it is None: llama-cpp-python's own
log-probabilities need ``logits_all=True``, which keeps an ``n_ctx x vocabulary`` float
matrix (400 MB for SmolLM2 at ``n_ctx = 2048``).

Example:
    >>> provider = LlamaCppProvider()  # the packaged SmolLM2  # doctest: +SKIP
    >>> provider.chat([ChatMessage("user", "Say hi.")], ChatParams(max_tokens=16))  # doctest: +SKIP
    ChatReply(text='Hi! How can I help you today?', usage=Usage(input_tokens=31, ...), ...)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sluice.errors import ConfigError, MissingDependencyError, ModelCallError, ModelTimeoutError
from sluice.models.calls import ChatMessage, ChatParams, ChatReply, Usage
from sluice.models.providers.gguf import LLM_INSTALL_HINT, file_sha256, packaged_gguf

__all__ = ["LlamaCppProvider"]


class LlamaCppProvider:
    """Chat with a GGUF model in this process (a :class:`ChatProvider`).

    Args:
        model_path: The GGUF file. None: the packaged SmolLM2-135M-Instruct
            (see :func:`~sluice.models.providers.gguf.packaged_gguf`).
        version: Version recorded in lineage. None: the first 12 hex digits of the
            file's sha256.
        model: Model name recorded in lineage. None: the file name without ``.gguf``.
        endpoint: The endpoint's name (in error messages).
        n_ctx: Context window, in tokens (prompt and reply together).
        n_threads: CPU threads for generation. None: llama.cpp's default (half the
            cores, at least one).
        timeout_s: Default per-call timeout, in seconds.

    Raises:
        MissingDependencyError: ``llama-cpp-python`` (or the packaged GGUF) is missing.
        ConfigError: The file does not exist or llama.cpp cannot load it.
    """

    def __init__(
        self,
        model_path: Path | str | None = None,
        *,
        version: str | None = None,
        model: str | None = None,
        endpoint: str = "llama-cpp",
        n_ctx: int = 2048,
        n_threads: int | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        try:
            import llama_cpp
        except ImportError as exc:
            raise MissingDependencyError(
                f"endpoint {endpoint!r} runs a GGUF model with llama-cpp-python, "
                "which is not installed",
                hint=LLM_INSTALL_HINT,
            ) from exc
        path = Path(model_path) if model_path is not None else packaged_gguf()
        if not path.is_file():
            raise ConfigError(
                f"endpoint {endpoint!r}: GGUF file {path} does not exist",
                hint="check the endpoint's model_path",
            )
        self.endpoint = endpoint
        self.path = path
        self.model = model or path.name.removesuffix(".gguf")
        self.version = version or file_sha256(path)[:12]
        self.timeout_s = timeout_s
        self._llama_cpp = llama_cpp
        self._lock = threading.Lock()
        try:
            self._llama: Any = llama_cpp.Llama(
                model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, verbose=False
            )
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(
                f"endpoint {endpoint!r}: llama.cpp cannot load {path}: {exc}",
                hint="is it a GGUF file this llama-cpp-python version supports?",
            ) from exc

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(endpoint={self.endpoint!r}, model={self.model!r}, "
            f"version={self.version!r}, path={str(self.path)!r})"
        )

    def chat(
        self,
        messages: Sequence[ChatMessage],
        params: ChatParams,
        *,
        timeout_s: float | None = None,
    ) -> ChatReply:
        """One chat completion, greedy at temperature 0.

        Args:
            messages: The conversation (formatted with the GGUF's chat template).
            params: Generation parameters; ``seed`` seeds sampling above temperature 0.
            timeout_s: This call's timeout, waiting for the model included (default:
                the provider's).

        Returns:
            The reply, its token usage, finish reason and (at temperature 0) confidence.

        Raises:
            ModelTimeoutError: The deadline passed while waiting or generating.
            ModelCallError: llama.cpp failed (e.g. the prompt does not fit ``n_ctx``).
        """
        timeout = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        if not self._lock.acquire(timeout=max(timeout, 0.0)):
            raise self._timeout(timeout, "waiting for the model (it serves one call at a time)")
        try:
            return self._chat_locked(messages, params, deadline, timeout)
        finally:
            self._lock.release()

    def close(self) -> None:
        """Free the model (waits for a running call)."""
        with self._lock:
            llama, self._llama = self._llama, None
            if llama is not None:
                llama.close()

    def _chat_locked(
        self,
        messages: Sequence[ChatMessage],
        params: ChatParams,
        deadline: float,
        timeout: float,
    ) -> ChatReply:
        if self._llama is None:
            raise ModelCallError(
                f"endpoint {self.endpoint!r}: the provider is closed", endpoint=self.endpoint
            )
        greedy = params.temperature == 0
        eos = int(self._llama.token_eos())
        step_logprobs: list[float] = []
        timed_out = False

        def each_step(
            _ids: npt.NDArray[np.intc], logits: npt.NDArray[np.single]
        ) -> npt.NDArray[np.single]:
            # Runs first in the sampler chain, on the raw logits indexed by token id.
            nonlocal timed_out
            if greedy:  # greedy takes the argmax: its log-probability is max - logsumexp
                top = float(logits.max())
                step_logprobs.append(-float(np.log(np.exp(logits - top, dtype=np.float64).sum())))
            if time.monotonic() >= deadline:
                timed_out = True
                only_eos = np.full_like(logits, -np.inf)
                only_eos[eos] = 0.0
                return only_eos
            return logits

        self._llama.reset()  # no prefix reuse: the same call gives the same reply
        try:
            result = self._llama.create_chat_completion(
                messages=[message.to_dict() for message in messages],
                max_tokens=params.max_tokens,
                temperature=params.temperature,
                seed=params.seed,
                stop=list(params.stop) or None,
                logits_processor=self._llama_cpp.LogitsProcessorList([each_step]),
            )
        except Exception as exc:  # llama.cpp's errors are ValueError/RuntimeError/...
            raise ModelCallError(
                f"endpoint {self.endpoint!r}: llama.cpp failed: {type(exc).__name__}: {exc}",
                endpoint=self.endpoint,
                hint="a prompt longer than n_ctx fails this way; shorten it or raise n_ctx",
            ) from exc
        if timed_out:
            raise self._timeout(timeout, "generating")
        choice = result["choices"][0]
        usage = result.get("usage") or {}
        output_tokens = int(usage.get("completion_tokens") or 0)
        # One step per reply token, plus the step that chose end-of-sequence (left out).
        steps = step_logprobs[:output_tokens]
        confidence = float(np.exp(np.mean(steps))) if greedy and steps else None
        return ChatReply(
            text=choice["message"].get("content") or "",
            usage=Usage(
                input_tokens=int(usage.get("prompt_tokens") or 0), output_tokens=output_tokens
            ),
            finish_reason=choice.get("finish_reason"),
            confidence=confidence,
        )

    def _timeout(self, timeout: float, doing: str) -> ModelTimeoutError:
        return ModelTimeoutError(
            f"endpoint {self.endpoint!r} ran out of its {timeout:g} s {doing}",
            endpoint=self.endpoint,
            hint="raise the route's timeout_s, lower max_tokens, or add a fallback",
        )
