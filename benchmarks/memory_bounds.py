"""Worst-case memory per setting, measured: what each bound of `inferstack serve` lets RSS grow to.

Three short measurements on loopback (`docs/runtime/memory.md` states the formulas they check):
1. resting RSS of the server process and of its model process, per model (echo handler, the
   fixed-time handler, the demo MLP): the model-process term;
2. the queue term: a model that holds its first batch for 20 s (the fixed-time handler with
   a = 20,000 ms), max batch 128, a burst of concurrent 128-row bodies that all fit the body
   budget and the queue: every admitted request then waits decoded in the queue, so the server's
   peak RSS growth is the raw bodies (bounded by the budget) plus the decoded tensors (queue
   length x one request's rows); it is run at two queue limits to separate the two;
3. (in `abuse.py`, not repeated here) the 1,000-body burst for the body budget and the worker's
   four maximum-size messages for `max_message_bytes`.

    .venv/bin/python benchmarks/memory_bounds.py [--bodies 300]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from abuse import _children, _reset_peaks, _rss_mb, _rss_peak_mb  # noqa: E402
from fixed_time_model import A_MS_ENV  # noqa: E402
from loadgen import PYTHON, free_port, machine_load, start_server, stop_server  # noqa: E402

from inferstack.contract.env import ENV_GRPC_PORT, ENV_TORCH_THREADS  # noqa: E402
from tests.v2_client import encode_request  # noqa: E402

ROWS = 128
FEATURES = {"echo_model:Echo": 512, "fixed_time_model:FixedTime": 64, "builtin://mlp": 512}
ENV = {
    "PYTHONPATH": str(Path(__file__).resolve().parent),
    ENV_TORCH_THREADS: "1",
    ENV_GRPC_PORT: "0",
}


def serve(
    model: str, port: int, *flags: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    command = [PYTHON, "-m", "inferstack.cli", "serve", "--model", model, "--model-name", "m"]
    command += ["--port", str(port), "--max-batch-size", str(ROWS), *flags]
    return start_server(command, port, {**ENV, **(env or {})})


def resting() -> None:
    print("\n1. Resting RSS (MB), max batch 128, one model process")
    print("| model | server process | model process |")
    print("|---|---|---|")
    for model in FEATURES:
        port = free_port()
        process = serve(model, port)
        try:
            time.sleep(1.0)
            children = _children(process.pid)
            model_mb = sum(_rss_mb(pid) for pid in children)
            print(f"| {model} | {_rss_mb(process.pid):.0f} | {model_mb:.0f} |")
        finally:
            stop_server(process)


def queued(bodies: int) -> None:
    width = FEATURES["fixed_time_model:FixedTime"]
    values = np.random.default_rng(4).standard_normal((ROWS, width)).astype(np.float32)
    body = encode_request({"input": values}).body
    decoded_kb = values.nbytes / 1024
    print(
        f"\n2. {bodies} concurrent {len(body) / 1e3:.0f} KB bodies ({ROWS} rows, {decoded_kb:.0f} "
        "KiB decoded) held in the queue behind a 20 s batch; budget 1 GiB (all fit)"
    )
    print("| queue limit | statuses | server peak RSS growth MB | per admitted request KB |")
    print("|---|---|---|---|")
    for limit in (bodies // 4, bodies):
        port = free_port()
        process = serve(
            "fixed_time_model:FixedTime",
            port,
            "--max-queue-size",
            str(limit),
            "--max-body-bytes-in-flight",
            str(1 << 30),
            "--request-timeout-ms",
            "0",
            env={A_MS_ENV: "20000"},
        )
        try:
            before = _rss_mb(process.pid)
            _reset_peaks([process.pid])
            statuses = _post_all(port, body, bodies, settle_s=8.0)
            growth = _rss_peak_mb(process.pid) - before
            admitted = max(1, statuses.count(0))
            tally = ", ".join(f"{statuses.count(s)} x {s or 'held'}" for s in sorted(set(statuses)))
            print(f"| {limit} | {tally} | {growth:.0f} | {growth * 1024 / admitted:.0f} |")
        finally:
            process.kill()  # a drain would wait for the 20 s batches
            process.wait()


def _post_all(port: int, body: bytes, count: int, settle_s: float) -> list[int]:
    """Send `count` posts at once; after `settle_s`, each one's status (0: not answered yet)."""
    head = (
        f"POST /v2/models/m/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    statuses = [0] * count
    sockets: list[socket.socket] = []

    def post(index: int) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", port))
            sockets.append(sock)
            sock.sendall(head + body)
            statuses[index] = int(sock.recv(64).split(b" ", 2)[1])
        except (OSError, IndexError, ValueError):
            pass

    threads = [threading.Thread(target=post, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    time.sleep(settle_s)
    for sock in sockets:
        sock.close()
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", type=int, default=300)
    parser.add_argument("--skip", nargs="*", default=[], choices=["resting", "queue"])
    args = parser.parse_args()
    os.environ[ENV_GRPC_PORT] = "0"
    print(f"memory bounds on {os.cpu_count()} cores; {machine_load()}")
    if "resting" not in args.skip:
        resting()
    if "queue" not in args.skip:
        queued(args.bodies)


if __name__ == "__main__":
    main()
