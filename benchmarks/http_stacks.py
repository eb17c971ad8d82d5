"""Which HTTP stack carries the v2 endpoints fastest? The measurement behind `runtime/server.py`.

Every candidate serves the same `InferenceApp` (same routing, codec, batcher and metrics) in
front of a model that returns its input (`echo_model.Echo`), so the only difference is the
HTTP layer: the runtime's own protocol on httptools (`runtime/http.py`, what `inferstack serve`
runs), raw ASGI on uvicorn with httptools, and aiohttp's low-level server. All run on uvloop.
wrk drives each with the same JSON request (one 512-float row) at 32 and 128 connections.

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

from loadgen import PYTHON, free_port, machine_load, start_server, stop_server, wrk  # noqa: E402

from inferstack.runtime.protocol import encode_request  # noqa: E402

STACKS = ("inferstack", "uvicorn-httptools", "aiohttp")


async def _served_app() -> Any:
    """The product's `InferenceApp` in front of the echo model, with a started batcher."""
    from inferstack.runtime.app import InferenceApp, ServedModel
    from inferstack.runtime.batcher import BatcherConfig, DynamicBatcher
    from inferstack.runtime.metrics import RuntimeMetrics
    from inferstack.runtime.models import load_model

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

        async def handle(request: web.Request) -> web.Response:
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


SERVERS = {"uvicorn-httptools": serve_uvicorn, "aiohttp": serve_aiohttp}


def command(stack: str, port: int) -> list[str]:
    if stack == "inferstack":
        # The product path: `inferstack serve`, the runtime's own protocol on httptools + uvloop.
        return [
            PYTHON,
            "-m",
            "inferstack.cli",
            "serve",
            "--model",
            "echo_model:Echo",
            "--model-name",
            "mlp",
            "--max-queue-delay-ms",
            "0",
            "--port",
            str(port),
        ]
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
    print(f"  {'stack':<20} {'clients':>7} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
    env = {"PYTHONPATH": str(Path(__file__).resolve().parent), "INFERSTACK_TORCH_THREADS": "1"}
    for stack in STACKS:
        port = free_port()
        server = start_server(command(stack, port), port, env=env)
        url = f"http://127.0.0.1:{port}/v2/models/mlp/infer"
        try:
            wrk(url, body.body, 32, 2.0)
            for clients in (32, 128):
                load = wrk(url, body.body, clients, args.seconds)
                print(
                    f"  {stack:<20} {clients:>7} {load.rps:>8.0f} {load.p50_ms:>7.2f} "
                    f"{load.p99_ms:>7.2f} {load.errors:>6}"
                )
        finally:
            stop_server(server)
    print(f"machine after: {machine_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
