"""The queue worker's HTTP port: `/metrics` for Prometheus and the health path for the kubelet.

`GET WORKER_HEALTH_PATH` (`inferstack.contract.pods`) answers from the consume loop, not from
the process: 200 while the loop has beaten within `Worker.health_bound_s` (poll wait plus lease),
503 before it first ran (the model is still loading), once it stopped, or when it went quiet
(a receive that never returns, an event loop that is blocked). The body is a small JSON document
(`Health.document`) that says which. Served from its own thread, so a blocked event loop cannot
hold up the answer that reports it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from inferstack.contract.pods import METRICS_PATH, WORKER_HEALTH_PATH

logger = logging.getLogger("inferstack.worker")


@dataclass(frozen=True)
class Health:
    """Whether the consume loop is alive, as the worker's health endpoint reports it."""

    live: bool
    state: str
    """`starting` (the loop has not run yet), `consuming`, `draining`, `stopped` or `stale`
    (running, but it has not beaten within `bound_s`)."""
    beat_age_s: float | None
    """Seconds since the loop last beat; None before it first ran."""
    bound_s: float
    held: int

    def document(self) -> dict[str, Any]:
        """The JSON body of the health answer."""
        age = None if self.beat_age_s is None else round(self.beat_age_s, 3)
        return {
            "live": self.live,
            "state": self.state,
            "beat_age_s": age,
            "bound_s": self.bound_s,
            "held": self.held,
        }


class WorkerHttpServer:
    """`/metrics` and the health path on one port, in a daemon thread."""

    def __init__(
        self,
        port: int,
        registry: CollectorRegistry,
        health: Callable[[], Health],
        *,
        host: str = "0.0.0.0",
    ) -> None:
        self._server = ThreadingHTTPServer((host, port), _handler(registry, health))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="worker-http", daemon=True
        )

    @property
    def port(self) -> int:
        """The bound port (useful when 0 asked for any free one)."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def close(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()


def _handler(
    registry: CollectorRegistry, health: Callable[[], Health]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name.
            logger.debug("http: " + format, *args)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming.
            path = self.path.split("?", 1)[0]
            if path == WORKER_HEALTH_PATH:
                state = health()
                body = json.dumps(state.document()).encode()
                self._send(200 if state.live else 503, "application/json", body)
            elif path == METRICS_PATH:
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            else:
                known = f"{METRICS_PATH}, {WORKER_HEALTH_PATH}"
                self._send(404, "text/plain", f"not found; this port serves {known}\n".encode())

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

    return Handler
