"""An OpenAI-compatible chat server on loopback that reads the images it receives.

No vision model small enough for these tests is installed here, so this server stands in for
a vision tier: it accepts OpenAI's chat-completions format with ``image_url`` parts (inline
``data:`` URLs or links), decodes each inline image with Pillow, answers (whole or streamed,
with usage) by describing what it received, and appends every request it received to a JSON
lines file, so a test can check what reached the tier and that nothing did.

Run: ``python -m tests.integration_tests.vision_server --port N --log FILE``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from tests.conftest import TIME_UNIT_S
from tests.integration_tests.cloud_server import CLOUD_KEY, free_port

MODEL = "vision-loopback"


def received_images(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Each image part of a chat request, as the server read it."""
    from PIL import Image

    images: list[dict[str, Any]] = []
    for message in body.get("messages", []):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if part.get("type") != "image_url":
                continue
            url = part["image_url"]["url"]
            if not url.startswith("data:"):
                images.append({"url": url})
                continue
            header, _, data = url[5:].partition(",")
            raw = base64.b64decode(data)
            with Image.open(io.BytesIO(raw)) as image:
                image.load()
                images.append(
                    {
                        "declared": header.split(";")[0],
                        "format": image.format,
                        "width": image.width,
                        "height": image.height,
                        "bytes": len(raw),
                        "sha256": hashlib.sha256(raw).hexdigest(),
                    }
                )
    return images


def create_app(log: Path) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "test"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        if request.headers.get("authorization") != f"Bearer {CLOUD_KEY}":
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        body = await request.json()
        images = received_images(body)
        with log.open("a") as out:
            out.write(json.dumps({"model": body.get("model"), "images": images}) + "\n")
        seen = ", ".join(
            f"{i['format']} {i['width']}x{i['height']}" if "format" in i else "a linked image"
            for i in images
        )
        words = f"I see {len(images)} image(s): {seen or 'none'}.".split(" ")
        usage = {
            "prompt_tokens": 10 + 85 * len(images),
            "completion_tokens": len(words),
            "total_tokens": 10 + 85 * len(images) + len(words),
        }
        base = {"id": "chatcmpl-vision", "created": int(time.time()), "model": MODEL}
        if not body.get("stream"):
            message = {"role": "assistant", "content": " ".join(words)}
            return {
                **base,
                "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": usage,
            }

        def events() -> Any:
            chunk = {**base, "object": "chat.completion.chunk"}
            for index, word in enumerate(words):
                delta = (
                    {"role": "assistant", "content": word}
                    if index == 0
                    else {"content": " " + word}
                )
                choice = {"index": 0, "delta": delta, "finish_reason": None}
                yield f"data: {json.dumps({**chunk, 'choices': [choice]})}\n\n"
            end = {"index": 0, "delta": {}, "finish_reason": "stop"}
            yield f"data: {json.dumps({**chunk, 'choices': [end]})}\n\n"
            if (body.get("stream_options") or {}).get("include_usage"):
                yield f"data: {json.dumps({**chunk, 'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


class VisionServer:
    """The server in a process of its own on a free loopback port."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.requests_log = directory / "received.jsonl"
        self.requests_log.touch()
        self._output = (directory / "server.log").open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration_tests.vision_server",
                "--port",
                str(self.port),
                "--log",
                str(self.requests_log),
            ],
            stdout=self._output,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30 * TIME_UNIT_S
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2):
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the vision server did not start") from None
                time.sleep(0.2)

    def received(self) -> list[dict[str, Any]]:
        """Every chat request received so far: its model and images."""
        lines = self.requests_log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self._output.close()


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(args.log), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
