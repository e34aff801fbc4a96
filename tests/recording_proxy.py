"""A loopback HTTP proxy that keeps every request body it forwards to a real server.

Tests of what a model server *received* put it in front of the real llama.cpp server:
the gateway talks real HTTP to the proxy, the proxy forwards each request unchanged and
returns the server's answer unchanged, and ``bodies`` holds what went over the wire.

    with RecordingProxy("http://127.0.0.1:8000/v1") as proxy:
        base_url = proxy.base_url  # give this to the endpoint
        ...
        assert "jo@example.com" not in proxy.wire_text()
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


class RecordingProxy:
    """Forwards ``/v1/...`` to ``upstream`` (a base URL ending in ``/v1``), recording."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/").removesuffix("/v1")
        self.bodies: list[bytes] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.bodies.append(body)
                wanted = ("content-type", "authorization")
                headers = {k: v for k, v in self.headers.items() if k.lower() in wanted}
                answer = httpx.request(
                    method, proxy.upstream + self.path, content=body, headers=headers, timeout=300
                )
                self.send_response(answer.status_code)
                kind = answer.headers.get("content-type", "application/json")
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def do_POST(self) -> None:
                self._forward("POST")

            def do_GET(self) -> None:
                self._forward("GET")

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """The proxy's base URL, ending in ``/v1``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def wire_text(self) -> str:
        """Every body forwarded so far, decoded, in one string."""
        return "\n".join(b.decode("utf-8", "replace") for b in self.bodies)

    def sent_messages(self) -> list[str]:
        """The content of every chat message forwarded so far (JSON decoded)."""
        contents = []
        for body in self.bodies:
            if body:
                for message in json.loads(body).get("messages", []):
                    contents.append(str(message.get("content", "")))
        return contents

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
