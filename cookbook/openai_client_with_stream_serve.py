"""The official ``openai`` client against ``stream serve``, the OpenAI-compatible server.

This starts ``stream serve`` as you would run it, a process of its own on a free 127.0.0.1
port with a fresh API key (``STREAM_API_KEYS``), a config file and a policy database in a
temporary directory (none of yours is read or written), and the embedded local model as its
only tier. Then, with ``openai.OpenAI``:

1. lists the served models (``stream-auto``, the router, and one id per configured tier);
2. asks ``stream-auto`` for a whole answer and reads the routing record twice: from the
   ``x-stream-routing`` response header and from the ``routing`` field of the body;
3. streams an answer with ``stream_options={"include_usage": True}``: the header holds the
   record known at the first token, the last chunk with a choice the whole record, and a last
   chunk without choices the usage;
4. calls with a wrong key, which the client raises as ``openai.AuthenticationError`` (401).

The server is stopped at the end, also when something fails.

Run it: ``python cookbook/openai_client_with_stream_serve.py`` (about 10 s on two cores). You
will see the model ids, both answers with their tier, complexity and timings, the streamed
usage, and the 401 error.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def stream_serve(api_key: str, workdir: Path) -> Iterator[str]:
    """``stream serve`` on a free loopback port; yields its base URL and stops it afterwards."""
    port = free_port()
    config = workdir / "stream.toml"
    config.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_")}
    env.update(
        {
            "STREAM_API_KEYS": api_key,
            "STREAM_CONFIG": str(config),
            "STREAM_DATABASE_URL": f"sqlite:///{workdir / 'stream.db'}",
        }
    )
    command = [sys.executable, "-m", "langchain_stream.cli", "serve", "--port", str(port)]
    print(f"$ STREAM_API_KEYS=... stream serve --port {port}")
    log = (workdir / "serve.log").open("w")
    # A session of its own, so stopping it reaches every process it started, and only those.
    process = subprocess.Popen(
        [*command, "--no-access-log"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:  # /healthz answers once the server has loaded the local model
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"stream serve did not start:\n{(workdir / 'serve.log').read_text()}"
                )
            time.sleep(0.25)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have exited on its own
            os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C would
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
        print(f"[server stopped] exit code {process.returncode}")


def main() -> None:
    api_key = secrets.token_hex(32)  # as `openssl rand -hex 32` would make
    with (
        tempfile.TemporaryDirectory(prefix="stream-serve-") as tmp,
        stream_serve(api_key, Path(tmp)) as url,
    ):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0)

        print("[models]", [model.id for model in client.models.list()])

        raw = client.chat.completions.with_raw_response.create(
            model="stream-auto",
            messages=[{"role": "user", "content": "What color is the sky on a clear day?"}],
            max_tokens=24,
            temperature=0,
        )
        header = json.loads(raw.headers["x-stream-routing"])
        completion = raw.parse()
        routing = (completion.model_extra or {})["routing"]
        print(f"[whole answer] {completion.choices[0].message.content!r}")
        print(
            f"    header x-stream-routing: tier={header['tier']} "
            f"complexity={header['complexity']} reason={header['reason']}"
        )
        print(
            f"    body routing: ttft={routing['ttft_ms']:.0f} ms "
            f"usage={routing['usage']} finish_reason={completion.choices[0].finish_reason}"
        )

        raw_stream = client.chat.completions.with_raw_response.create(
            model="stream-auto",
            messages=[{"role": "user", "content": "Explain in one sentence what DNA is."}],
            max_tokens=32,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        at_first_token = json.loads(raw_stream.headers["x-stream-routing"])
        print(
            f"[stream] header at the first token: tier={at_first_token['tier']} "
            f"complexity={at_first_token['complexity']} ttft={at_first_token['ttft_ms']:.0f} ms"
        )
        print("    ", end="")
        record: dict[str, Any] = {}
        usage = None
        for chunk in raw_stream.parse():
            if chunk.choices:
                print(chunk.choices[0].delta.content or "", end="", flush=True)
                record = (chunk.model_extra or {}).get("routing") or record
            elif chunk.usage is not None:  # the include_usage chunk: no choices
                usage = chunk.usage
        print()
        print(
            f"    last chunk's routing: tier={record['tier']} "
            f"tokens_per_s={record['tokens_per_s']} duration={record['duration_ms']:.0f} ms"
        )
        if usage is None:
            raise SystemExit("no usage chunk arrived")
        print(
            f"    usage chunk: prompt_tokens={usage.prompt_tokens} "
            f"completion_tokens={usage.completion_tokens} total_tokens={usage.total_tokens}"
        )

        wrong = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-wrong-key", max_retries=0)
        try:
            wrong.models.list()
        except openai.AuthenticationError as exc:
            print(f"[wrong key] openai.AuthenticationError {exc.status_code}: {exc.message}")
        else:
            raise SystemExit("the server accepted a wrong key")


if __name__ == "__main__":
    main()
