"""The HTTP server: raw ASGI on uvicorn (httptools parser, uvloop), start-up and graceful drain.

Why this stack: measured against aiohttp with the same endpoints and wrk
(`benchmarks/http_stacks.py`, numbers in the README), raw ASGI on uvicorn with httptools and
uvloop answered the most requests per second; a framework layer (routing, request objects) adds
per-request Python work that the six v2 routes do not need.

Start-up: the port opens first (so liveness answers while a large model loads), the model loads
and warms up on a worker thread, then readiness turns true.

Drain, on SIGTERM or SIGINT: readiness turns false and new inference requests get 503 with
Retry-After while the port stays open (the endpoint leaves the Service meanwhile); everything
already admitted completes; then the server closes, within `drain_grace_s`. A second signal
stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable, MutableMapping
from types import FrameType
from typing import Any

import uvicorn

from inferstack.runtime.app import InferenceApp, Response, ServedModel
from inferstack.runtime.batcher import DynamicBatcher
from inferstack.runtime.metrics import RuntimeMetrics
from inferstack.runtime.models import (
    configure_gil_switch_interval,
    configure_torch_threads,
    load_model,
    model_name_from_uri,
    resolve_device,
    warm_up,
)
from inferstack.runtime.protocol import error_body
from inferstack.runtime.settings import ServerSettings

log = logging.getLogger("inferstack.runtime")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class AsgiAdapter:
    """Serves an `InferenceApp` as a raw ASGI application, enforcing the body size limit."""

    def __init__(self, app: InferenceApp, max_request_bytes: int) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # Lifespan is off; websockets are not part of the protocol.
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        body = await self._read_body(headers, receive)
        if body is None:
            response = Response(
                413,
                error_body(
                    f"the request body exceeds {self.max_request_bytes} bytes; send smaller "
                    "batches or raise max_request_bytes"
                ),
            )
        else:
            response = await self.app.handle(scope["method"], scope["path"], headers, body)
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (b"content-type", response.content_type.encode()),
                    *((name.encode(), value.encode()) for name, value in response.headers),
                ],
            }
        )
        await send({"type": "http.response.body", "body": response.body})

    async def _read_body(self, headers: dict[str, str], receive: Receive) -> bytes | None:
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_request_bytes:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b""
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_request_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _DrainingServer(uvicorn.Server):
    """uvicorn's server with a drain step between the signal and closing the port."""

    def __init__(self, config: uvicorn.Config, on_signal: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_signal = on_signal
        self._signalled = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Runs as a signal handler: only schedule work on the loop from here.
        if self._signalled:
            self.should_exit = True
            self.force_exit = True
            return
        self._signalled = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_signal)
        else:
            self.should_exit = True


class InferenceServer:
    """One served model behind the v2 HTTP API, from start-up to drained exit."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.model_name = settings.model_name or model_name_from_uri(settings.model)
        self.metrics = RuntimeMetrics(self.model_name)
        self.app = InferenceApp(self.model_name, self.metrics)
        config = uvicorn.Config(
            AsgiAdapter(self.app, settings.max_request_bytes),
            host=settings.host,
            port=settings.port,
            loop="none",  # The caller's loop (uvloop when installed, see run()).
            http="httptools",
            lifespan="off",
            access_log=False,
            log_level=settings.log_level,
            timeout_graceful_shutdown=5,
            # Per-request work nobody here needs: X-Forwarded-* rewriting, Server and Date headers.
            proxy_headers=False,
            server_header=False,
            date_header=False,
        )
        self.http = _DrainingServer(config, self._begin_drain)
        self._drain_task: asyncio.Task[None] | None = None
        self.exit_code = 0

    async def serve(self) -> int:
        """Open the port, load and warm the model, serve until drained. Returns the exit code."""
        http_task = asyncio.create_task(self.http.serve(), name="http")
        try:
            await self._load()
        except BaseException:
            self.http.should_exit = True
            await http_task
            raise
        await http_task
        if self._drain_task is not None:
            await self._drain_task
        served = self.app.served
        if served is not None:
            await served.batcher.close()
        return self.exit_code

    async def _load(self) -> None:
        settings = self.settings
        threads = settings.resolved_torch_threads()
        configure_torch_threads(threads)
        configure_gil_switch_interval(settings.gil_switch_interval_us)
        device = resolve_device(settings.device)
        started = time.perf_counter()
        model = await asyncio.to_thread(
            load_model, settings.model, name=self.model_name, device=device
        )
        loaded = time.perf_counter()
        config = settings.batcher_config()
        sizes = sorted({1, *config.preferred_batch_sizes, config.max_batch_size})
        await asyncio.to_thread(warm_up, model, sizes)
        warmed = time.perf_counter()
        if self.http.should_exit or self._drain_task is not None:
            return  # Told to stop while loading: never turn ready.
        batcher = DynamicBatcher(
            model.predict_batch, config, name=self.model_name, metrics=self.metrics
        )
        await batcher.start()
        self.app.served = ServedModel(
            model, batcher, self.metrics, "gpu" if device.startswith("cuda") else "cpu"
        )
        log.info(
            "model %s (%s) ready on %s:%d: load %.2fs, warm-up %.2fs at batch sizes %s, "
            "device %s, %d torch threads",
            self.model_name,
            settings.model,
            settings.host,
            settings.port,
            loaded - started,
            warmed - loaded,
            sizes,
            device,
            threads,
        )

    def _begin_drain(self) -> None:
        if self._drain_task is None:
            self._drain_task = asyncio.create_task(self.drain(), name="drain")

    async def drain(self) -> None:
        """Turn unready, refuse new work, finish admitted work within the grace, then close."""
        self.app.draining = True
        served = self.app.served
        grace = self.settings.drain_grace_s
        if served is not None:
            log.info(
                "draining: %d requests outstanding, grace %.0fs", served.batcher.outstanding, grace
            )
            try:
                await asyncio.wait_for(served.batcher.drain(), timeout=grace)
            except TimeoutError:
                log.error(
                    "drain grace of %.0fs ran out with %d requests unanswered",
                    grace,
                    served.batcher.outstanding,
                )
                self.exit_code = 1
            else:
                log.info("drained: every admitted request was answered")
        self.http.should_exit = True


def run_server(settings: ServerSettings) -> int:
    """Run the server to completion on uvloop (asyncio when uvloop is absent)."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    server = InferenceServer(settings)
    # SIGTERM before the loop runs would kill the process with no drain; nothing is admitted yet.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(server.serve())
