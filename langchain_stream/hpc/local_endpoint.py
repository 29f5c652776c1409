"""A Globus Compute endpoint on one machine: a process pool and a relay on 127.0.0.1.

:class:`LocalEndpoint` is a :class:`concurrent.futures.Executor` that runs each task the way a
Globus Compute endpoint does: the function and its arguments are serialized with
``ComputeSerializer``, deserialized in a worker process, run, and the result goes through the
serializer again. It also runs a real relay in its own process, so ``ChatHPC(executor=
LocalEndpoint())`` streams through the same data plane as on a cluster. Tests and benchmarks
use it, and so does ``STREAM_HPC_ENDPOINT_ID=local``.

Each worker process loads one copy of its model, once, in the pool's initializer; every
request that names no other model shares it. Processes are started with ``spawn`` (a forked
llama.cpp or event loop is not safe to use), and only when the endpoint is first used.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib
import logging
import multiprocessing
import os
import secrets
import signal
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from typing import Any

from langchain_stream.errors import ConfigurationError, RelayUnavailableError

logger = logging.getLogger("langchain_stream.hpc.local_endpoint")

DEFAULT_START_TIMEOUT_S = 60.0
"""Bound on starting the relay process."""

RelayTarget = Callable[[Connection, str, int, str, dict[str, Any]], None]
"""A child-process entry point that serves a relay and speaks :func:`serve_control`."""


# --------------------------------------------------------------------------- relay process


async def serve_control(conn: Connection, port: int) -> None:
    """Report ``port`` on ``conn``, then answer control messages until ``"stop"`` or EOF.

    Messages: ``"cpu"`` → this process's CPU time in seconds (user + system); ``"stop"``.
    SIGTERM stops too.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_message() -> None:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            loop.remove_reader(conn.fileno())
            stop.set()
            return
        if message == "cpu":
            conn.send(time.process_time())
        elif message == "stop":
            stop.set()

    loop.add_reader(conn.fileno(), on_message)
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    conn.send(("ready", port))
    await stop.wait()


def _serve_relay(
    conn: Connection, host: str, port: int, secret: str, limits: dict[str, Any]
) -> None:
    from langchain_stream.relay.limits import RelayLimits
    from langchain_stream.relay.server import RelayServer

    logging.basicConfig(level=logging.WARNING)

    async def main() -> None:
        bounds = RelayLimits(**limits)
        async with RelayServer(secret, host=host, port=port, limits=bounds) as relay:
            await serve_control(conn, relay.port)

    asyncio.run(main())


class RelayProcess:
    """A relay in a child process on loopback, for the local endpoint, tests and benchmarks.

    Args:
        secret: The token secret; a random one when ``None``.
        host: Interface to bind.
        port: TCP port; 0 picks a free one.
        target: The child's entry point (default: this package's relay).
        **limits: Fields of :class:`~langchain_stream.relay.limits.RelayLimits`.
    """

    def __init__(
        self,
        secret: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        target: RelayTarget | None = None,
        **limits: Any,
    ) -> None:
        self.secret = secret or secrets.token_hex(32)
        self.host = host
        self._port = port
        self._target = target or _serve_relay
        self._limits = limits
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    def start(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> None:
        """Start the process and wait until it listens.

        Raises:
            RelayUnavailableError: It did not come up within ``timeout_s``.
        """
        if self._process is not None:
            return
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=self._target,
            args=(child, self.host, self._port, self.secret, self._limits),
            name="stream-relay",
            daemon=True,
        )
        process.start()
        child.close()
        if not parent.poll(timeout_s):
            process.kill()
            raise RelayUnavailableError(f"the relay process did not start within {timeout_s} s")
        _, self._port = parent.recv()
        self._process, self._conn = process, parent

    @property
    def port(self) -> int:
        """The bound port."""
        return self._port

    @property
    def url(self) -> str:
        """The base URL clients dial."""
        return f"ws://{self.host}:{self._port}"

    @property
    def pid(self) -> int | None:
        """The relay process's id."""
        return self._process.pid if self._process is not None else None

    @property
    def alive(self) -> bool:
        """Whether the relay process is running."""
        return self._process is not None and self._process.is_alive()

    def cpu_time_s(self) -> float:
        """CPU seconds (user + system) the relay process has used so far."""
        if self._conn is None:
            raise RuntimeError("the relay process is not running")
        with self._lock:
            self._conn.send("cpu")
            return float(self._conn.recv())

    def stop(self, timeout_s: float = 10.0) -> None:
        """Shut the relay down gracefully (every channel closed with 1001), then reap it."""
        process, conn = self._process, self._conn
        if process is None or conn is None:
            return
        with contextlib.suppress(OSError), self._lock:
            conn.send("stop")
        process.join(timeout_s)
        if process.is_alive():
            process.kill()
            process.join(timeout_s)
        conn.close()
        self._process = self._conn = None

    def kill(self) -> None:
        """Kill the relay at once (SIGKILL), as a crash would."""
        if self._process is not None:
            self._process.kill()
            self._process.join()


# --------------------------------------------------------------------------- endpoint


def _init_worker(
    model_path: str | None,
    n_ctx: int | None,
    n_threads: int | None,
    preload: bool,
    projector_path: str | None = None,
) -> None:
    from langchain_stream.hpc.backends import configure_llama, preload_llama

    # Import what every task deserializes into now, not during the first request.
    importlib.import_module("langchain_stream.hpc.worker")
    configure_llama(model_path, n_ctx=n_ctx, n_threads=n_threads, projector_path=projector_path)
    if preload:
        try:
            preload_llama()
        except Exception:  # the request that needs the model will report it
            logger.exception("the local endpoint could not preload its model")


def _payload(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> str:
    """``fn(*args, **kwargs)`` serialized as the Globus Compute SDK sends a task."""
    from globus_compute_sdk.serialize import ComputeSerializer

    serializer = ComputeSerializer()
    return serializer.pack_buffers(
        [serializer.serialize(fn), serializer.serialize(args), serializer.serialize(kwargs)]
    )


def _run_task(payload: str) -> Any:
    """Run one serialized task as a Globus Compute worker does, in a pool process."""
    from globus_compute_sdk.serialize import ComputeSerializer

    serializer = ComputeSerializer()
    try:
        fn, args, kwargs = serializer.unpack_and_deserialize(payload)
        result = fn(*args, **kwargs)
        # The result crosses the serializer too, as it does on its way back from an endpoint.
        return serializer.deserialize(serializer.serialize(result))
    except Exception as exc:
        # Like Globus's TaskExecutionFailed: a plain exception carrying the remote traceback,
        # since an arbitrary exception may not survive pickling back to the client.
        raise RuntimeError(
            f"task failed on the local endpoint: {type(exc).__name__}: {exc}\n"
            + "".join(traceback.format_exception(exc))
        ) from None


class LocalEndpoint(Executor):
    """A process pool standing in for a Globus Compute endpoint, with its own relay.

    Nothing starts until the first :meth:`submit` (or :meth:`start`,
    :meth:`start_in_background`, or reading :attr:`relay_urls`). Tasks run in ``workers``
    processes after a ``ComputeSerializer`` round trip; a worker that dies is replaced (the
    pool is rebuilt) on the next submit. :meth:`endpoint_status` reports the endpoint as
    Globus Compute reports its endpoints.

    Args:
        workers: Worker processes; each holds one model copy.
        relay: Run a relay on 127.0.0.1 (:attr:`relay_urls`, :attr:`relay_secret`).
        relay_secret: The relay's secret; random when ``None``.
        model_path: GGUF file the workers load for llama.cpp requests (``None``: the local
            model of the settings, else the embedded one).
        n_ctx: Context window of that model (``None``: the settings' ``local_n_ctx``).
        n_threads: llama.cpp threads per worker (``None``: the settings' value, else half the
            logical cores).
        preload: Load the model when each worker starts, so no request pays for it.
        projector_path: The model's vision projector (mmproj GGUF), so it reads images.
        relay_limits: Fields of :class:`~langchain_stream.relay.limits.RelayLimits`.
    """

    def __init__(
        self,
        *,
        workers: int = 1,
        relay: bool = True,
        relay_secret: str | None = None,
        model_path: str | None = None,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        preload: bool = True,
        relay_limits: dict[str, Any] | None = None,
        projector_path: str | None = None,
    ) -> None:
        if workers < 1:
            raise ConfigurationError("a local endpoint needs at least one worker")
        self.workers = workers
        self._worker_args = (model_path, n_ctx, n_threads, preload, projector_path)
        self._relay = RelayProcess(relay_secret, **(relay_limits or {})) if relay else None
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._ready = threading.Event()  # every worker has loaded its model
        self._warming = False
        self._outstanding = 0  # submitted tasks not yet finished

    def start(self) -> None:
        """Start the relay and the workers, and wait until each worker is ready (idempotent).

        A worker is ready once it has loaded its model, so the first request is not slowed by
        the endpoint's cold start.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("the local endpoint is shut down")
            if self._relay is not None:
                self._relay.start()
            if self._pool is not None:
                return
            self._pool = self._new_pool()
            # The pool spawns a process per task while none is idle: one task per worker.
            # Those tasks take the serialized path, so its imports are warm too.
            ready = [
                self._pool.submit(_run_task, _payload(worker_pid)) for _ in range(self.workers)
            ]
        for future in ready:
            future.result()
        self._ready.set()

    def start_in_background(self) -> None:
        """Start as :meth:`start` does, on a thread of its own; nothing if started or closed."""
        with self._lock:
            if self._closed or self._warming or self._ready.is_set():
                return
            self._warming = True

        def warm() -> None:
            try:
                self.start()
            except Exception:  # the next request reports it
                logger.exception("the local endpoint could not start")
            finally:
                with self._lock:
                    self._warming = False

        threading.Thread(target=warm, name="stream-endpoint-start", daemon=True).start()

    def endpoint_status(self) -> dict[str, Any]:
        """This endpoint's state, in the shape of Globus Compute's ``get_endpoint_status``.

        ``offline`` once shut down or when its relay has died; ``total_workers`` is 0 until
        every worker has loaded its model (cold); ``pending_tasks`` wait for a worker.
        """
        with self._lock:
            closed, outstanding = self._closed, self._outstanding
        ready = self._ready.is_set()
        if closed or (ready and self._relay is not None and not self._relay.alive):
            return {"status": "offline", "details": {}}
        workers = self.workers if ready else 0
        return {
            "status": "online",
            "details": {
                "total_workers": workers,
                "idle_workers": max(workers - outstanding, 0),
                "pending_tasks": max(outstanding - workers, 0),
                "outstanding_tasks": outstanding,
            },
        }

    def _task_done(self, _future: Future[Any]) -> None:
        with self._lock:
            self._outstanding -= 1

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=self._worker_args,
        )

    @property
    def relay(self) -> RelayProcess | None:
        """The relay process, if this endpoint runs one."""
        return self._relay

    @property
    def relay_urls(self) -> list[str]:
        """URLs of this endpoint's relay (starts the endpoint)."""
        if self._relay is None:
            return []
        self.start()
        return [self._relay.url]

    @property
    def relay_secret(self) -> str | None:
        """The relay's token secret."""
        return self._relay.secret if self._relay is not None else None

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Serialize ``fn(*args, **kwargs)`` with ``ComputeSerializer`` and run it in a worker.

        Raises:
            globus_compute_sdk.errors.SerializationError: Something is not serializable.
        """
        payload = _payload(fn, *args, **kwargs)
        self.start()
        with self._lock:
            assert self._pool is not None
            try:
                future = self._pool.submit(_run_task, payload)
            except BrokenProcessPool:
                # A worker died (killed, out of memory): replace the pool, as an endpoint would.
                logger.warning("a local endpoint worker died; restarting the worker pool")
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
                future = self._pool.submit(_run_task, payload)
            self._outstanding += 1
        future.add_done_callback(self._task_done)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the relay (open channels end, so streaming tasks stop), then the workers."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None and cancel_futures:
            pool.shutdown(wait=False, cancel_futures=True)
        if self._relay is not None:
            self._relay.stop()
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=cancel_futures)


_shared: LocalEndpoint | None = None
_shared_lock = threading.Lock()


def shared_local_endpoint() -> LocalEndpoint:
    """The process-wide local endpoint of ``STREAM_HPC_ENDPOINT_ID=local``, from the settings."""
    global _shared
    with _shared_lock:
        if _shared is None:
            from langchain_stream.config import get_settings

            settings = get_settings()
            _shared = LocalEndpoint(
                workers=settings.hpc_local_workers,
                relay=not settings.relay_urls,  # configured relays are used when there are any
                relay_secret=(
                    settings.relay_secret.get_secret_value() if settings.relay_secret else None
                ),
                model_path=settings.hpc_model or settings.local_model,
                n_ctx=settings.local_n_ctx,
                n_threads=settings.local_n_threads,
                preload=not settings.hpc_backend_url,
            )
            atexit.register(_shared.shutdown, wait=True, cancel_futures=True)
        return _shared


def worker_pid() -> int:
    """This process's id (submit it to learn which process a one-worker endpoint runs)."""
    return os.getpid()


__all__ = [
    "DEFAULT_START_TIMEOUT_S",
    "LocalEndpoint",
    "RelayProcess",
    "RelayTarget",
    "serve_control",
    "shared_local_endpoint",
    "worker_pid",
]
