"""Starting and driving a real `inferstack serve` process: what the server's end-to-end tests
share (one process, the front door, abuse, gRPC, failure isolation, model sources)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120.0


@dataclass
class Server:
    """A started server process and its HTTP port."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], bool], what: str, timeout_s: float = START_TIMEOUT_S
) -> None:
    """Poll a condition of another process; fail with `what` if it never holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def http_status(url: str) -> int:
    """The status of a GET (0 when nothing answers)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def post_json(url: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """POST a JSON body: the status, the headers and the body of the answer."""
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status), dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), dict(error.headers), error.read()


def start_server(*flags: str, env: dict[str, str] | None = None) -> Server:
    """`inferstack serve` on a free port with `flags`, once it is ready (one torch thread)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "inferstack.cli", "serve", "--port", str(port), *flags],
        cwd=REPO,
        env={
            **os.environ,
            "PYTHONPATH": str(REPO),
            "INFERSTACK_TORCH_THREADS": "1",
            **(env or {}),
        },
        stderr=subprocess.PIPE,
    )
    server = Server(process, port)

    def ready() -> bool:
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            raise AssertionError(f"server exited: {stderr[-3000:]}")
        return http_status(f"{server.url}/v2/health/ready") == 200

    wait_until(ready, "the server to become ready")
    return server


def stop_server(server: Server) -> None:
    """SIGTERM and wait for the drain; kill after a minute."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def start_gated(tmp_path: Path, *flags: str) -> tuple[Server, Path, Path]:
    """A server of the Gated handler, and the FIFOs it announces on and waits at."""
    entered, gate = tmp_path / "entered", tmp_path / "gate"
    os.mkfifo(entered)
    os.mkfifo(gate)
    server = start_server(
        "--model",
        "tests.runtime.handlers:Gated",
        *flags,
        env={"INFERSTACK_TEST_ENTERED": str(entered), "INFERSTACK_TEST_GATE": str(gate)},
    )
    return server, entered, gate


def row_body(values: np.ndarray) -> bytes:
    """A v2 JSON request of one FP32 input named `input`."""
    return json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": list(values.shape),
                    "data": values.ravel().tolist(),
                }
            ]
        }
    ).encode()
