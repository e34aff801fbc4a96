"""Chat and embeddings over the OpenAI-compatible HTTP API (vLLM, llama.cpp, Ollama, hosted).

One :class:`OpenAICompatibleProvider` per endpoint holds one pooled ``httpx.Client``
(thread-safe) and speaks two routes under the endpoint's ``base_url``:

* ``POST {base_url}/chat/completions``, non-streamed;
* ``POST {base_url}/embeddings``, with ``encoding_format = "float"``.

Failures are mapped onto the model plane's errors, each naming the endpoint:

=============================================  ======================================
what happened                                  raised
=============================================  ======================================
no answer within ``timeout_s``                 :class:`~sluice.errors.ModelTimeoutError`
connection refused/reset, 5xx, 429, a body      :class:`~sluice.errors.ModelCallError`
that is not the expected JSON
another 4xx (bad request, auth, unknown model)  :class:`~sluice.errors.ModelCallError`
                                               with the server's error text
=============================================  ======================================

The API key travels only in the ``Authorization: Bearer`` header. It is kept out of
``repr()``, ``str()``, log records and error messages (httpx masks the header in its own
reprs too).

Confidence: the provider asks for token log-probabilities (``"logprobs": true,
"top_logprobs": 0``) and sets :attr:`ChatReply.confidence` to ``exp(mean logprob)`` of
the reply's tokens. llama-cpp-python's server (0.3.36) returns them only when
``top_logprobs`` is present, hence the explicit 0 (OpenAI and vLLM accept it too). A
server that answers without log-probabilities gives ``confidence = None``; one that
refuses the fields needs ``request_logprobs=False``.

Embeddings: one pooled vector per input is expected. llama-cpp-python's server started
with ``--embedding`` on a generative GGUF (such as SmolLM2) does not pool: it returns a
list of per-token vectors for each input (misaligned for batches of more than one text
in 0.3.36), which this provider refuses with a :class:`~sluice.errors.ModelCallError`
rather than guess a pooling.

Example:
    >>> provider = OpenAICompatibleProvider(
    ...     "vllm", "http://10.0.0.5:8000/v1", "Qwen2.5-7B-Instruct", api_key="sk-secret"
    ... )
    >>> provider
    OpenAICompatibleProvider(endpoint='vllm', base_url='http://10.0.0.5:8000/v1', \
model='Qwen2.5-7B-Instruct', version='served', api_key=***)
    >>> reply = provider.chat([ChatMessage("user", "hi")], ChatParams())  # doctest: +SKIP
    >>> provider.close()
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from typing import Any, NoReturn

import httpx
import numpy as np

from sluice.errors import ModelCallError, ModelTimeoutError
from sluice.models.calls import ChatMessage, ChatParams, ChatReply, Usage
from sluice.models.providers.base import Floats, public_url

__all__ = ["OpenAICompatibleProvider"]

logger = logging.getLogger(__name__)

#: Most characters of a server's error text quoted in an error message.
_MAX_ERROR_TEXT = 500


class OpenAICompatibleProvider:
    """A model served over the OpenAI-compatible HTTP API: chat and embeddings.

    Implements both :class:`~sluice.models.providers.base.ChatProvider` and
    :class:`~sluice.models.providers.base.EmbeddingProvider`; safe to call from several
    threads at once.

    Args:
        endpoint: The endpoint's name (in error messages and logs).
        base_url: The API's base URL, ending in ``/v1`` (``http://host:8000/v1``).
        model: The served model's name, sent as ``model`` in every request.
        version: The model's version as recorded in lineage (the server does not say).
        api_key: Sent as ``Authorization: Bearer <key>``; None sends no header.
        timeout_s: Default per-call timeout, in seconds. httpx applies it to each
            phase (connect, send, wait for the answer, pool); for a non-streamed
            completion the wait for the answer is the part that counts.
        max_connections: Connections kept to the server (calls beyond wait for one,
            within the call's timeout).
        request_logprobs: Ask chat completions for token log-probabilities (for
            :attr:`ChatReply.confidence`). Turn off for servers that reject the fields.
    """

    def __init__(
        self,
        endpoint: str,
        base_url: str,
        model: str,
        *,
        version: str = "served",
        api_key: str | None = None,
        timeout_s: float = 30.0,
        max_connections: int = 8,
        request_logprobs: bool = True,
    ) -> None:
        self.endpoint = endpoint
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.version = version
        self.timeout_s = timeout_s
        self.request_logprobs = request_logprobs
        self._shown_url = public_url(self.base_url)
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._has_key = bool(api_key)
        # The key lives only in the client's default headers: not an attribute of its own.
        self._client = httpx.Client(
            headers=headers,
            timeout=timeout_s,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        key = "***" if self._has_key else "None"
        return (
            f"{type(self).__name__}(endpoint={self.endpoint!r}, base_url={self._shown_url!r}, "
            f"model={self.model!r}, version={self.version!r}, api_key={key})"
        )

    def __enter__(self) -> OpenAICompatibleProvider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def chat(
        self,
        messages: Sequence[ChatMessage],
        params: ChatParams,
        *,
        timeout_s: float | None = None,
    ) -> ChatReply:
        """One non-streamed chat completion.

        Args:
            messages: The conversation.
            params: Generation parameters (``seed`` and ``stop`` sent when set).
            timeout_s: This call's timeout (default: the provider's).

        Returns:
            The reply, its token usage, finish reason and confidence (or None).

        Raises:
            ModelTimeoutError: No answer in time.
            ModelCallError: Any other failure.
        """
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [message.to_dict() for message in messages],
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        if self.request_logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = 0
        data = self._post("chat/completions", body, timeout_s)
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            if not isinstance(text, str):
                raise TypeError("message.content is not a string")
            finish_reason = choice.get("finish_reason")
            confidence = _confidence(choice.get("logprobs"))
            usage = _usage(data.get("usage"))
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            self._bad_shape("chat/completions", exc)
        return ChatReply(
            text=text,
            usage=usage,
            finish_reason=str(finish_reason) if finish_reason is not None else None,
            confidence=confidence,
        )

    def embed(
        self, texts: Sequence[str], *, timeout_s: float | None = None
    ) -> tuple[Floats, Usage]:
        """L2-normalized float32 embeddings, row ``i`` for ``texts[i]``.

        Args:
            texts: The texts (one request for all of them).
            timeout_s: This call's timeout (default: the provider's).

        Returns:
            The ``(len(texts), dim)`` matrix and the prompt tokens the server counted.

        Raises:
            ModelTimeoutError: No answer in time.
            ModelCallError: Any other failure, including a server that returns
                per-token vectors instead of one pooled vector per text.
        """
        if not texts:
            return np.zeros((0, 0), dtype=np.float32), Usage()
        body = {
            "model": self.model,
            "input": list(texts),
            "encoding_format": "float",
        }
        data = self._post("embeddings", body, timeout_s)
        try:
            rows = sorted(data["data"], key=lambda row: int(row.get("index", 0)))
            vectors = [row["embedding"] for row in rows]
            if len(vectors) != len(texts):
                raise ValueError(f"{len(vectors)} embeddings for {len(texts)} inputs")
            if any(vector and isinstance(vector[0], list) for vector in vectors):
                raise ModelCallError(
                    f"endpoint {self.endpoint!r} returned per-token embeddings, not one "
                    "pooled vector per input",
                    endpoint=self.endpoint,
                    hint=(
                        "serve an embedding model that pools (llama.cpp's server with a "
                        "generative GGUF does not)"
                    ),
                )
            matrix = np.asarray(vectors, dtype=np.float32)
            if matrix.ndim != 2 or matrix.shape[1] == 0:
                raise ValueError(f"embeddings of shape {matrix.shape}")
            usage = Usage(input_tokens=_usage(data.get("usage")).input_tokens)
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            self._bad_shape("embeddings", exc)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix /= np.where(norms > 0, norms, 1.0)
        return matrix, usage

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    # -- plumbing ---------------------------------------------------------------------

    def _post(self, route: str, body: dict[str, Any], timeout_s: float | None) -> Any:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        url = f"{self.base_url}/{route}"
        try:
            response = self._client.post(url, json=body, timeout=timeout)
        except httpx.TimeoutException as exc:
            raise ModelTimeoutError(
                f"endpoint {self.endpoint!r} did not answer {route} within {timeout:g} s "
                f"({type(exc).__name__})",
                endpoint=self.endpoint,
                hint="raise the route's timeout_s, lower max_tokens, or add a fallback",
            ) from None
        except httpx.HTTPError as exc:  # connect, read, protocol errors
            logger.debug("endpoint %s: %s to %s", self.endpoint, type(exc).__name__, route)
            raise ModelCallError(
                f"endpoint {self.endpoint!r}: {type(exc).__name__} calling "
                f"{self._shown_url}/{route}",
                endpoint=self.endpoint,
                hint="is the server running and reachable at base_url?",
            ) from None
        if response.status_code >= 400:
            self._http_error(route, response)
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self._bad_shape(route, exc)

    def _http_error(self, route: str, response: httpx.Response) -> NoReturn:
        status = response.status_code
        detail = _error_text(response)
        key = self._client.headers.get("authorization", "").removeprefix("Bearer ")
        if key:  # a server that echoes the request must not leak the key into our errors
            detail = detail.replace(key, "***")
        message = f"endpoint {self.endpoint!r}: {route} answered HTTP {status}: {detail}"
        logger.debug("endpoint %s: %s answered HTTP %d", self.endpoint, route, status)
        if status == 429:
            retry_after = response.headers.get("retry-after")
            hint = "the server is rate limiting; lower the endpoint's rate_per_second" + (
                f" (it asks to retry after {retry_after} s)" if retry_after else ""
            )
        elif status >= 500:
            hint = "the server failed; it may answer a retry, or use a fallback endpoint"
        elif status in (401, 403):
            hint = "check the endpoint's API key (api_key_env, SLUICE_SECRETS_FILE)"
        elif status == 404:
            hint = "check base_url (it ends in /v1) and the model name"
        else:
            hint = "the server refused the request as sent; see its message"
        raise ModelCallError(message, endpoint=self.endpoint, hint=hint)

    def _bad_shape(self, route: str, exc: Exception) -> NoReturn:
        raise ModelCallError(
            f"endpoint {self.endpoint!r}: unexpected {route} response "
            f"({type(exc).__name__}: {exc})",
            endpoint=self.endpoint,
            hint="is base_url an OpenAI-compatible API (ending in /v1)?",
        ) from None


def _confidence(logprobs: Any) -> float | None:
    """``exp(mean logprob)`` over the reply's tokens, or None without log-probabilities."""
    if not isinstance(logprobs, dict) or not isinstance(logprobs.get("content"), list):
        return None
    values = [
        float(token["logprob"])
        for token in logprobs["content"]
        if isinstance(token, dict) and isinstance(token.get("logprob"), int | float)
    ]
    values = [value for value in values if math.isfinite(value)]
    if not values:
        return None
    return math.exp(sum(values) / len(values))


def _usage(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    return Usage(
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
    )


def _error_text(response: httpx.Response) -> str:
    """The server's error message: OpenAI's ``error.message``, FastAPI's ``detail``..."""
    text: Any
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        text = response.text
    else:
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            text = error.get("message") or error
        elif isinstance(body, dict) and ("detail" in body or "message" in body):
            text = body.get("detail") or body.get("message")
        else:
            text = error or body
    shown = str(text).strip() or response.reason_phrase
    return shown if len(shown) <= _MAX_ERROR_TEXT else shown[:_MAX_ERROR_TEXT] + "..."
