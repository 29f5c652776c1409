"""An OpenAI-compatible backend on loopback that takes images and records what it received.

It stands for a vision model server (vLLM) on the compute node: a real HTTP server on
127.0.0.1 that the worker, in its pool process, calls as it would call vLLM. For each request
it records every image's media type, size and SHA-256 digest (never the bytes), and streams
an answer that names them, so a test can tell the bytes arrived intact.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """What the backend saw of one request."""

    images: list[dict[str, Any]] = field(default_factory=list)
    """``mime_type``, ``bytes`` and ``sha256`` of each image, in order."""
    body_bytes: int = 0


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        body = json.loads(raw)
        received = Received(body_bytes=len(raw))
        for message in body["messages"]:
            content = message.get("content")
            for part in content if isinstance(content, list) else ():
                if part.get("type") != "image_url":
                    continue
                url = part["image_url"]["url"]
                header, _, data = url.partition(",")
                image = base64.b64decode(data, validate=True)
                received.images.append(
                    {
                        "mime_type": header.removeprefix("data:").split(";")[0],
                        "bytes": len(image),
                        "sha256": hashlib.sha256(image).hexdigest(),
                    }
                )
        self.server.received.append(received)
        words = [f"I see {len(received.images)} image(s)"]
        words += [f" {image['sha256'][:12]}" for image in received.images]
        chunks = [
            {"model": body["model"], "choices": [{"index": 0, "delta": {"content": word}}]}
            for word in words
        ]
        chunks.append(
            {
                "model": body["model"],
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
        )
        chunks.append(
            {
                "model": body["model"],
                "choices": [],
                "usage": {"prompt_tokens": 7, "completion_tokens": len(words), "total_tokens": 7},
            }
        )
        payload = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(payload.encode())))
        self.end_headers()
        self.wfile.write(payload.encode())

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    received: list[Received]


@contextmanager
def image_backend() -> Iterator[tuple[str, list[Received]]]:
    """Serve the backend on a free loopback port; yield its base URL and what it receives."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1", server.received
    finally:
        server.shutdown()
        server.server_close()
