"""A stand-in for an external, paid LLM API: OpenAI-compatible chat completions on loopback.

Only for what the real local model cannot do on demand: answer with a chosen reply
(cited, uncited, lying about a source) so that the checks after it can be shown to
work. It speaks real HTTP to the real `openai` provider; nothing of Sluice is replaced.

    with OpenAIStub(lambda request: "Refunds take 3 days [1].") as stub:
        base_url = stub.base_url  # http://127.0.0.1:PORT/v1
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = Callable[[dict[str, Any]], str]


class OpenAIStub:
    """A loopback server whose chat completions say what ``reply(request)`` returns."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(body)
                if not self.path.endswith("/chat/completions"):
                    self.send_error(404)
                    return
                text = stub.reply(body)
                payload = json.dumps(
                    {
                        "id": f"stub-{len(stub.requests)}",
                        "object": "chat.completion",
                        "model": body.get("model"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 100, "completion_tokens": 20},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_: Any) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="openai-stub", daemon=True
        )

    @property
    def base_url(self) -> str:
        """The ``base_url`` an ``openai`` endpoint declares to reach this stub."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> OpenAIStub:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
