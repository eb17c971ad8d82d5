"""Requests per second against the front door's acceptor count, in one run.

    .venv/bin/python benchmarks/frontdoor.py [--acceptors 1,2] [--connections 32,128]
        [--seconds 5] [--rounds 1]

One `inferstack serve` per acceptor count (`--acceptors N`; 1 is the server as it always ran:
one process parses everything), each with builtin://mlp, max batch 128, max queue delay 2 ms
(the knobs of issue 23's Triton comparison) and automatic torch threads. All are started before
the first run and stay idle while another is measured; within each round the counts alternate,
so a slower stretch of a shared machine does not land on one count alone. wrk drives each with
the same JSON inference request (one 512-float row), closed loop, keep-alive.

Printed per count and connection count: requests per second (median over the rounds), p50 and
p99 latency, errors, the ratio to the first count, and the server's CPU time per request (every
process of the server: the main one, the acceptors and the model process; from /proc).
On a 2-core machine expect little gain: the model process already takes one core, and the
acceptors share the other with wrk.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The repository root, for the v2 client half that tests and benchmarks share.
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from loadgen import (  # noqa: E402
    PYTHON,
    LoadResult,
    cpu_seconds,
    free_port,
    machine_load,
    start_server,
    stop_server,
    wrk,
)

from tests.processes import stat_fields  # noqa: E402
from tests.v2_client import encode_request  # noqa: E402

KNOBS = ("--max-batch-size", "128", "--max-queue-delay-ms", "2", "--grpc-port", "0")


def _counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated counts >= 1, got {text!r}")
    return counts


def process_tree(root: int) -> list[int]:
    """`root` and every process below it (acceptors, model process, decoder helpers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                children.setdefault(int(stat_fields(int(entry.name))[1]), []).append(
                    int(entry.name)
                )
            except (OSError, IndexError, ValueError):
                continue  # Gone while we looked.
    tree, stack = [], [root]
    while stack:
        pid = stack.pop()
        tree.append(pid)
        stack.extend(children.get(pid, []))
    return tree


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds used so far by `root` and its descendants that are still running."""
    total = 0.0
    for pid in process_tree(root):
        try:
            total += cpu_seconds(pid)
        except OSError:
            continue
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--acceptors", type=_counts, default=[1, 2], help="e.g. 1,2,3")
    parser.add_argument("--connections", type=_counts, default=[32, 128], help="e.g. 32,128")
    parser.add_argument("--seconds", type=float, default=5.0, help="per run")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds; medians")
    args = parser.parse_args()
    body = encode_request({"input": np.random.default_rng(0).random((1, 512), dtype=np.float32)})
    print(f"machine: {machine_load()}")
    servers = {}
    try:
        for count in args.acceptors:
            port = free_port()
            command = [PYTHON, "-m", "inferstack.cli", "serve", "--model", "builtin://mlp"]
            command += ["--port", str(port), "--acceptors", str(count), *KNOBS]
            servers[count] = (start_server(command, port), port)
        for _, port in servers.values():  # Warm every server before measuring.
            wrk(f"http://127.0.0.1:{port}/v2/models/mlp/infer", body.body, 32, 1.0)
        runs: dict[tuple[int, int], list[tuple[LoadResult, float]]] = {}
        for _round in range(args.rounds):
            for connections in args.connections:
                for count, (process, port) in servers.items():
                    before = tree_cpu_seconds(process.pid)
                    result = wrk(
                        f"http://127.0.0.1:{port}/v2/models/mlp/infer",
                        body.body,
                        connections,
                        args.seconds,
                    )
                    used = tree_cpu_seconds(process.pid) - before
                    per_request = used / max(1, result.requests) * 1e6
                    runs.setdefault((count, connections), []).append((result, per_request))
    finally:
        for process, _ in servers.values():
            stop_server(process)
    header = ("acceptors", "clients", "req/s", "ratio", "p50 ms", "p99 ms", "errors", "CPU us/req")
    print("  {:>9} {:>7} {:>8} {:>6} {:>7} {:>7} {:>6} {:>10}".format(*header))
    for connections in args.connections:
        base = None
        for count in args.acceptors:
            measured = runs[(count, connections)]
            rps = statistics.median(result.rps for result, _ in measured)
            base = base or rps
            p50 = statistics.median(result.p50_ms for result, _ in measured)
            p99 = statistics.median(result.p99_ms for result, _ in measured)
            errors = sum(result.errors for result, _ in measured)
            cpu = statistics.median(cpu for _, cpu in measured)
            print(
                f"  {count:>9} {connections:>7} {rps:>8.0f} {rps / base:>5.2f}x {p50:>7.1f} "
                f"{p99:>7.1f} {errors:>6} {cpu:>10.0f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
