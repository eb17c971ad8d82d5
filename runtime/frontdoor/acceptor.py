"""One acceptor process: the HTTP and gRPC servers on shared ports, in front of the link.

It runs the routes, the HTTP layer and the gRPC service that `inferstack serve` runs in one
process, unchanged, on SO_REUSEPORT sockets: the kernel spreads new connections over the
acceptors. Requests are parsed, admitted and decoded here; the decoded rows go over the link
to the one batcher of the model side (`remote.RemoteBatcher`), and each caller's rows come back.

What it is told over the link, in order: `ready` (the model is warm: its signature, the batcher's
knobs, the request limit), then results, then `drain` (readiness false, answers close their
connections) and `close` (stop listening, finish answers within the grace, exit). It ignores
SIGINT and SIGTERM (the model side decides, after the drain); a lost link stops it at once.

Limits that bound the whole server stay server-wide: each acceptor holds its share of the
in-flight body budget (at least one largest body) and of a set connection cap, so the
worst-case memory computed from the settings still holds. A cap of 0 (from the descriptor
limit) is each process's own, as descriptors are.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
from dataclasses import replace
from typing import Any, Final

from inferstack.runtime.batcher import BatcherConfig
from inferstack.runtime.frontdoor.remote import ERROR, RESULT, RemoteBatcher, RemoteSignature
from inferstack.runtime.frontdoor.shared import SharedMetrics, SharedState
from inferstack.runtime.frontdoor.wire import Link, open_link
from inferstack.runtime.grpc import GrpcLimits, GrpcServer
from inferstack.runtime.models import model_name_from_uri
from inferstack.runtime.server.http import HttpServer
from inferstack.runtime.server.lifecycle import (
    configure_logging,
    event_loop_factory,
    http_limits,
)
from inferstack.runtime.server.routes import ServedModel
from inferstack.runtime.server.sagemaker import app_for
from inferstack.runtime.server.settings import ServerSettings

log = logging.getLogger("inferstack.runtime.frontdoor")

LISTENING: Final = "listening"
FAILED: Final = "failed"
READY: Final = "ready"
DRAIN: Final = "drain"
CLOSE: Final = "close"


class Acceptor:
    """The servers of one acceptor process (see the module docstring)."""

    def __init__(
        self, settings: ServerSettings, index: int, count: int, shared: SharedState
    ) -> None:
        self.settings = settings
        self.index = index
        self.count = count
        self.shared = shared
        self.model_name = settings.model_name or model_name_from_uri(settings.model)
        self.metrics = SharedMetrics(self.model_name)
        self.app = app_for(settings, self.model_name, self.metrics)
        limits = http_limits(settings)
        self.http = HttpServer(
            self.app,
            replace(
                limits,
                max_body_bytes_in_flight=self._share(limits.max_body_bytes_in_flight),
                max_connections=-(-settings.max_connections // count),
            ),
        )
        self.grpc = GrpcServer(self.app)
        self.link: Link | None = None
        self._batcher: RemoteBatcher | None = None
        self._stopped = asyncio.Event()
        self._closing: asyncio.Task[None] | None = None
        self.exit_code = 0

    def _share(self, budget: int) -> int:
        """This acceptor's part of a server-wide budget: the settings bound the whole server
        (the worst-case memory is computed from them), not each process."""
        return -(-budget // self.count)

    async def serve(self, sock: socket.socket) -> int:
        """Listen, report to the model side, serve until told to close. Returns the exit code."""
        self.link = await open_link(sock, self._received, self._link_lost)
        try:
            await self.http.start(self.settings.host, self.settings.port, reuse_port=True)
        except OSError as error:
            self.link.send((FAILED, f"acceptor {self.index}: {error}"))
            await asyncio.sleep(0)  # Let the frame out before the link closes.
            return 2
        self.link.send((LISTENING, os.getpid()))
        try:
            await self._stopped.wait()
        finally:
            await self.grpc.close(grace_s=0)
            self.app.decoder.close()
            self.link.close()
        return self.exit_code

    def _received(self, header: Any, payload: bytearray) -> None:
        kind = header[0]
        if kind in (RESULT, ERROR):
            if self._batcher is not None:
                self._batcher.answered(header, payload)
        elif kind == READY:
            asyncio.get_running_loop().create_task(self._ready(*header[1:]))
        elif kind == DRAIN:
            self.app.draining = True
            self.http.begin_drain()
        elif kind == CLOSE and self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close(float(header[1])))

    async def _ready(
        self,
        signature: RemoteSignature,
        config: BatcherConfig,
        max_request_bytes: int,
        device_kind: str,
    ) -> None:
        """The model is warm: size the limits by its signature, open gRPC, turn ready."""
        settings = self.settings
        self.http.limits = replace(
            self.http.limits,
            max_request_bytes=max_request_bytes,
            max_body_bytes_in_flight=max(
                max_request_bytes, self._share(settings.body_budget(max_request_bytes))
            ),
        )
        assert self.link is not None
        if self.shared.draining:
            return  # Told to drain before the model was warm: never turn ready.
        self._batcher = RemoteBatcher(self.link, self.shared, config)
        gc.collect()
        gc.freeze()  # As in one process: no gen-2 pass walks what lives as long as the process.
        self.app.served = ServedModel(signature, self._batcher, self.metrics, device_kind)
        if settings.grpc_port:
            limits = self.http.limits
            await self.grpc.start(
                settings.host,
                settings.grpc_port,
                replace(
                    GrpcLimits.for_model(
                        limits.max_request_bytes,
                        limits.max_body_bytes_in_flight,
                        settings.max_queue_size,
                        limits.max_connections,
                    ),
                    reuse_port=True,
                ),
            )

    async def _close(self, grace_s: float) -> None:
        """Stop listening; connections finish their answers within the grace."""
        self.app.draining = True
        await self.http.close(grace_s=grace_s)
        await self.grpc.close(grace_s=grace_s)
        self._stopped.set()

    def _link_lost(self) -> None:
        if self._closing is not None or self._stopped.is_set():
            return
        log.error("acceptor %d lost the model side; stopping", self.index)
        self.exit_code = 1
        self.shared_lost()

    def shared_lost(self) -> None:
        """The model side is gone: fail what waits, stop at once."""
        if self._batcher is not None:
            self._batcher.fail_all("the model side of this server stopped; retry elsewhere")
        self._closing = asyncio.get_running_loop().create_task(self._close(0))


def acceptor_main(
    settings: ServerSettings, index: int, count: int, sock: socket.socket, shared: SharedState
) -> None:
    """The acceptor process's entry point (multiprocessing spawn)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    configure_logging(settings)
    acceptor = Acceptor(settings, index, count, shared)
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        code = runner.run(acceptor.serve(sock))
    raise SystemExit(code)


__all__ = ["CLOSE", "DRAIN", "FAILED", "LISTENING", "READY", "Acceptor", "acceptor_main"]
