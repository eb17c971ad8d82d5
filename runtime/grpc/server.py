"""The gRPC port: a `grpc.aio` server on the serving event loop, its limits, start and drain.

It opens once the model is warm, not with the HTTP port: grpc fixes the largest message it
receives when the server is built, and that limit comes from the model's signature (the same
`max_request_bytes` as an HTTP body: the JSON worst case of a max-size batch, which bounds the
binary and protobuf forms too). Until then a client gets UNAVAILABLE (connection refused), as
from Triton, which opens its ports after loading; liveness stays on HTTP, which opens first.

Limits, each against a way to hold the server's memory or CPU:
- max receive message size: the model's limit above; larger messages get RESOURCE_EXHAUSTED from
  grpc before any of their bytes are kept;
- concurrent RPCs: the queue size plus as many max-size messages as the HTTP body budget holds;
  past it grpc refuses with RESOURCE_EXHAUSTED before reading the message;
- connections: grpc's `grpc.max_allowed_incoming_connections` from `max_connections` when set;
- pings and metadata: grpc's defaults (a client pinging more than every 5 minutes without data
  is sent GOAWAY; metadata over 8 KiB is refused);
- connection age: GOAWAY after CONNECTION_AGE_S so that HTTP/2 connections, which live as long
  as clients keep them, spread again over replicas that a scale-up added; it also ends a call
  whose message never completes (grpc waits for the bytes its length prefix announced);
- idle connections: closed after CONNECTION_IDLE_S without a call in progress.

Drain: readiness and health turn false with the server's (`InferenceApp.draining`); inference
keeps being served through the listen window and refused (UNAVAILABLE) after it, as over HTTP;
`close` then sends GOAWAY and lets calls in flight finish within the grace.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

import grpc

from inferstack.runtime.grpc.service import InferenceService
from inferstack.runtime.server.routes import InferenceApp

log = logging.getLogger("inferstack.runtime.grpc")

CONNECTION_AGE_S: Final = 300.0
"""GOAWAY after this long, so that long-lived HTTP/2 connections rebalance over replicas."""
CONNECTION_AGE_GRACE_S: Final = 30.0
"""How long calls on a connection past its age may still take."""
CONNECTION_IDLE_S: Final = 60.0
"""A connection with no call in progress for this long is closed (GOAWAY): grpc skips frames it
does not expect, so a connection sending only those would otherwise stay open."""


@dataclass(frozen=True)
class GrpcLimits:
    """What one gRPC server accepts."""

    max_message_bytes: int
    """The largest request message (the model's request limit)."""
    max_concurrent_rpcs: int
    """RPCs in progress at once, all connections together."""
    max_connections: int = 0
    """Open connections (0: the descriptor limit)."""
    reuse_port: bool = False
    """SO_REUSEPORT, for several acceptor processes on one port (`runtime/frontdoor/`)."""

    @classmethod
    def for_model(
        cls, max_request_bytes: int, body_budget: int, max_queue_size: int, max_connections: int
    ) -> GrpcLimits:
        """Limits from the model's request limit and the HTTP layer's budgets."""
        in_flight = max(1, body_budget // max_request_bytes)
        return cls(max_request_bytes, max_queue_size + in_flight, max_connections)

    def options(self) -> list[tuple[str, int]]:
        """grpc channel arguments for these limits."""
        options = [
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_connection_age_ms", int(CONNECTION_AGE_S * 1000)),
            ("grpc.max_connection_age_grace_ms", int(CONNECTION_AGE_GRACE_S * 1000)),
            ("grpc.max_connection_idle_ms", int(CONNECTION_IDLE_S * 1000)),
            # A second server on the same port must fail to start, not share it silently;
            # the front door's acceptors share it on purpose (and check it is free first).
            ("grpc.so_reuseport", int(self.reuse_port)),
        ]
        if self.max_connections:
            options.append(("grpc.max_allowed_incoming_connections", self.max_connections))
        return options


class GrpcServer:
    """The v2 gRPC API and gRPC health of one `InferenceApp`, on its own port."""

    def __init__(self, app: InferenceApp) -> None:
        self.app = app
        self.service = InferenceService(app)
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self, host: str, port: int, limits: GrpcLimits) -> None:
        """Listen on `host:port` (0: any free port, then `self.port`); OSError if taken."""
        server = grpc.aio.server(
            handlers=self.service.handlers(),
            options=limits.options(),
            maximum_concurrent_rpcs=limits.max_concurrent_rpcs,
        )
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            self.port = server.add_insecure_port(address)
        except RuntimeError as error:  # grpc reports a port in use this way.
            raise OSError(f"cannot listen for gRPC on {address}: {error}") from None
        await server.start()
        self._server = server
        log.info(
            "gRPC listening on %s:%d: messages up to %d bytes, %d calls at once",
            host,
            self.port,
            limits.max_message_bytes,
            limits.max_concurrent_rpcs,
        )

    async def close(self, grace_s: float) -> None:
        """Send GOAWAY, let calls in flight finish within `grace_s`, then cancel the rest."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace_s)
