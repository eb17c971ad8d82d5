"""Which HTTP stack carries the v2 endpoints fastest? The measurement behind `runtime/server/`.

Every candidate serves the same `InferenceApp` (same routing, codec, batcher and metrics) in
front of a model that returns its input (`echo_model.Echo`), so the only difference is the
HTTP layer: the runtime's own protocol on httptools (`server/http.py`, what `inferstack serve`
runs), raw ASGI on uvicorn with httptools, and aiohttp's low-level server. All run on uvloop in
one process each, with the echo model on the batcher's thread and Python's default GIL switch
interval.
wrk drives each with the same JSON inference request (one 512-float row) and with
`GET /v2/health/live` (the HTTP layer alone), at 32 and 128 connections. Besides req/s it reports
the server's CPU time per request (user + system, all threads, from /proc): on a machine the
model shares, that is the figure that decides how much CPU the HTTP layer leaves to the model.

    .venv/bin/python benchmarks/http_stacks.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The repository root, for the v2 client half that tests and benchmarks share.
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from loadgen import (  # noqa: E402
    PYTHON,
    cpu_seconds,
    free_port,
    machine_load,
    start_server,
    stop_server,
    wrk,
)

from tests.v2_client import encode_request  # noqa: E402

STACKS = ("inferstack", "uvicorn-httptools", "aiohttp")


async def _served_app() -> Any:
    """The product's `InferenceApp` in front of the echo model, with a started batcher."""
    from inferstack.runtime.batcher import BatcherConfig, DynamicBatcher
    from inferstack.runtime.metrics import RuntimeMetrics
    from inferstack.runtime.models import load_model
    from inferstack.runtime.server.routes import InferenceApp, ServedModel

    metrics = RuntimeMetrics("mlp")
    app = InferenceApp("mlp", metrics)
    model = load_model("echo_model:Echo", name="mlp")
    batcher = DynamicBatcher(
        model.predict_batch, BatcherConfig(max_queue_delay_s=0.0), name="mlp", metrics=metrics
    )
    await batcher.start()
    app.served = ServedModel(model, batcher, metrics)
    return app


class AsgiAdapter:
    """The app as a raw ASGI application: the thinnest way to put it behind uvicorn."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        response = await self.app.handle(scope["method"], scope["path"], headers, b"".join(chunks))
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


def serve_uvicorn(port: int) -> None:
    """The same app as raw ASGI on uvicorn with httptools (uvicorn's fastest configuration)."""
    import uvicorn
    import uvloop

    async def main() -> None:
        config = uvicorn.Config(
            AsgiAdapter(await _served_app()),
            host="127.0.0.1",
            port=port,
            loop="none",
            http="httptools",
            lifespan="off",
            access_log=False,
            log_level="warning",
            proxy_headers=False,
            server_header=False,
            date_header=False,
        )
        await uvicorn.Server(config).serve()

    uvloop.run(main())


def serve_aiohttp(port: int) -> None:
    """The same app behind aiohttp's low-level server (its C HTTP parser, uvloop)."""
    import uvloop
    from aiohttp import web

    async def main() -> None:
        app = await _served_app()

        async def handle(request: web.BaseRequest) -> web.Response:
            headers = {name.lower(): value for name, value in request.headers.items()}
            response = await app.handle(request.method, request.path, headers, await request.read())
            return web.Response(
                status=response.status,
                body=response.body,
                headers={"Content-Type": response.content_type, **dict(response.headers)},
            )

        runner = web.ServerRunner(web.Server(handle, access_log=None))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    uvloop.run(main())


def serve_inferstack(port: int) -> None:
    """The same app behind the runtime's own protocol (`server/http.py`), as `serve` runs it."""
    import uvloop

    from inferstack.runtime.server.http import HttpServer

    async def main() -> None:
        await HttpServer(await _served_app()).start("127.0.0.1", port)
        await asyncio.Event().wait()

    uvloop.run(main())


SERVERS = {
    "inferstack": serve_inferstack,
    "uvicorn-httptools": serve_uvicorn,
    "aiohttp": serve_aiohttp,
}


def command(stack: str, port: int) -> list[str]:
    return [PYTHON, __file__, "--serve", stack, str(port)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--serve", nargs=2, metavar=("STACK", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        stack, port = args.serve
        SERVERS[stack](int(port))
        return 0
    body = encode_request({"input": np.random.default_rng(0).random((1, 512), dtype=np.float32)})
    print(f"machine: {machine_load()}")
    header = ("stack", "request", "clients", "req/s", "p50 ms", "p99 ms", "errors", "CPU us/req")
    print("  {:<18} {:<8} {:>7} {:>8} {:>7} {:>7} {:>6} {:>10}".format(*header))
    env = {"PYTHONPATH": str(Path(__file__).resolve().parent)}
    for stack in STACKS:
        port = free_port()
        server = start_server(command(stack, port), port, env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            wrk(f"{base}/v2/models/mlp/infer", body.body, 32, 2.0)
            for label, path, method, payload in (
                ("infer", "/v2/models/mlp/infer", "POST", body.body),
                ("live", "/v2/health/live", "GET", b""),
            ):
                for clients in (32, 128):
                    before = cpu_seconds(server.pid)
                    load = wrk(base + path, payload, clients, args.seconds, method=method)
                    used = cpu_seconds(server.pid) - before
                    answered = load.requests - load.errors
                    print(
                        f"  {stack:<18} {label:<8} {clients:>7} {load.rps:>8.0f} "
                        f"{load.p50_ms:>7.2f} {load.p99_ms:>7.2f} {load.errors:>6} "
                        f"{1e6 * used / max(answered, 1):>10.0f}"
                    )
        finally:
            stop_server(server)
    print(f"machine after: {machine_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
