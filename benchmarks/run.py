"""`make bench`: the server against the raw-torch limit, on this machine, in one run.

1. Raw torch: `predict_batch` of builtin://mlp (what the model process runs, numpy in and out)
   at batch sizes 1..128 with the server's torch thread setting; the best items/s is the limit.
2. The server (`inferstack serve`, a separate process) under wrk with 32 and 128 keep-alive
   clients, each request one 512-float row, as JSON and as binary tensors: req/s, p50, p99, and
   from the server's own metrics the mean batch and the time per batch (pipe included).
3. The ratios to the limit, and the p99 target at 32 clients: max queue delay plus twice the
   compute time of a full batch.
4. For comparison, binary tensors again with the model on a thread of the server process
   (`model_process: false`), the runtime's other mode.

Optionally (`--perf-analyzer`), perf_analyzer against the same server with JSON and binary
tensors, from a separate virtualenv under `.bench/` that this script creates (the project venv
keeps its newer tritonclient).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The repository root, for the v2 client half that tests and benchmarks share.
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from loadgen import (  # noqa: E402
    PYTHON,
    REPO,
    LoadResult,
    cpu_seconds,
    free_port,
    machine_load,
    start_server,
    stop_server,
    wrk,
)

from inferstack.contract.env import (  # noqa: E402
    ENV_MAX_BATCH_SIZE,
    ENV_MAX_QUEUE_DELAY_MS,
    ENV_MODEL_PROCESS,
    ENV_TORCH_THREADS,
)
from inferstack.contract.metrics import BATCH_SIZE, COMPUTE_SECONDS  # noqa: E402
from inferstack.runtime.model_process import ModelProcessConfig, ProcessModel  # noqa: E402
from inferstack.runtime.models import (  # noqa: E402
    LoadedModel,
    configure_torch_threads,
    load_model,
)
from inferstack.runtime.server.settings import ServerSettings  # noqa: E402
from tests.v2_client import encode_request  # noqa: E402

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
MODEL = "builtin://mlp"
THREAD_LABEL = "bin/thr"
"""Binary tensors with the model on a thread of the server process (`model_process: false`)."""
PERF_ANALYZER_VENV = REPO / ".bench" / "perf-analyzer"


Timings = dict[int, tuple[float, float]]
"""Per batch size: (median ms per batch, items per second)."""


def raw_torch(threads: int, seconds_per_size: float) -> Timings:
    """`predict_batch` of the model in this process, alone: what the model process runs."""
    configure_torch_threads(threads)
    return time_batches(load_model(MODEL, device="cpu"), seconds_per_size)


def pipe_round_trip(seconds_per_size: float) -> Timings:
    """What the pipe to a model process costs: a model that returns its input, in a process.

    Not measured by alternating with the real model: two copies of its 25 MB of weights would
    evict each other from the cache and slow the raw figure down.
    """
    echo = ProcessModel.start(ModelProcessConfig("echo_model:Echo", "echo", "cpu", 1, (1,)))
    try:
        return time_batches(echo, seconds_per_size)
    finally:
        echo.close()


def time_batches(model: LoadedModel, seconds_per_size: float) -> Timings:
    """Median ms per `predict_batch`, and items per second, at each of BATCH_SIZES."""
    results: Timings = {}
    for batch_size in BATCH_SIZES:
        inputs = model.example_inputs(batch_size)
        for _ in range(3):
            model.predict_batch(inputs)
        timings: list[float] = []
        started = time.perf_counter()
        while time.perf_counter() - started < seconds_per_size:
            before = time.perf_counter()
            model.predict_batch(inputs)
            timings.append(time.perf_counter() - before)
        median_ms = float(np.median(timings)) * 1000
        results[batch_size] = (median_ms, batch_size * len(timings) / sum(timings))
    return results


@dataclass(frozen=True)
class BatchStats:
    """What the server's own metrics say about the batches it ran during one load."""

    batches: float
    rows: float
    compute_s: float

    def __sub__(self, other: BatchStats) -> BatchStats:
        return BatchStats(
            self.batches - other.batches, self.rows - other.rows, self.compute_s - other.compute_s
        )

    @property
    def mean_batch(self) -> float:
        return self.rows / self.batches if self.batches else 0.0

    @property
    def ms_per_batch(self) -> float:
        return 1000 * self.compute_s / self.batches if self.batches else 0.0


def batch_stats(port: int) -> BatchStats:
    """Totals of the batch-size and compute histograms from the server's /metrics."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        for series in (f"{BATCH_SIZE}_count", f"{BATCH_SIZE}_sum", f"{COMPUTE_SECONDS}_sum"):
            if line.startswith(series + "{"):
                totals[series] = totals.get(series, 0.0) + float(line.rsplit(" ", 1)[1])
    return BatchStats(
        totals.get(f"{BATCH_SIZE}_count", 0.0),
        totals.get(f"{BATCH_SIZE}_sum", 0.0),
        totals.get(f"{COMPUTE_SECONDS}_sum", 0.0),
    )


def perf_analyzer(port: int, concurrency: int, seconds: float) -> list[str]:
    """Run perf_analyzer (JSON, then binary tensors); returns its summary lines."""
    binary = PERF_ANALYZER_VENV / "bin" / "perf_analyzer"
    if not binary.exists():
        subprocess.run([PYTHON, "-m", "venv", str(PERF_ANALYZER_VENV)], check=True)
        pip = [str(PERF_ANALYZER_VENV / "bin" / "pip"), "install", "-q"]
        subprocess.run([*pip, "tritonclient[all]==2.51.0", "nvidia-cuda-runtime-cu12"], check=True)
    libs = next(PERF_ANALYZER_VENV.glob("lib/python*/site-packages/nvidia/cuda_runtime/lib"))
    env = {**os.environ, "LD_LIBRARY_PATH": f"{libs}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
    lines: list[str] = []
    formats = ("--input-tensor-format=json", "--output-tensor-format=json")
    for label, flags in (("JSON", list(formats)), ("binary", [])):
        completed = subprocess.run(
            [
                str(binary),
                "-m",
                "mlp",
                "-u",
                f"127.0.0.1:{port}",
                "-i",
                "http",
                "-b",
                "1",
                f"--concurrency-range={concurrency}",
                f"--measurement-interval={int(seconds * 1000)}",
                "--percentile=99",
                # A shared machine never gets within the default 10%: accept 50%, 4 trials.
                "--stability-percentage=50",
                "--max-trials=4",
                *flags,
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        if completed.returncode != 0:
            raise RuntimeError(
                f"perf_analyzer ({label}) failed:\n{completed.stdout}\n{completed.stderr}"
            )
        summary = [line.strip() for line in completed.stdout.splitlines() if "Concurrency:" in line]
        lines.append(f"perf_analyzer {label:6s} {summary[-1] if summary else completed.stdout}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="wrk run length")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--max-queue-delay-ms", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: server default)")
    parser.add_argument("--perf-analyzer", action="store_true", help="also run perf_analyzer")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    # The count the server resolves for these flags: it is also what raw torch is timed with.
    threads = ServerSettings(model=MODEL, torch_threads=args.threads).resolved_torch_threads()
    print(f"machine: {machine_load()}; torch intra-op threads {threads}")
    raw = raw_torch(threads, seconds_per_size=1.5)
    piped = pipe_round_trip(seconds_per_size=0.5)
    best_size, (best_latency_ms, limit) = max(raw.items(), key=lambda item: item[1][1])
    print("\nraw torch (predict_batch, numpy in/out); pipe: the round trip to a model process")
    print(f"  {'batch':>5} {'ms/batch':>9} {'items/s':>9} {'pipe ms':>8}")
    for size, (latency_ms, throughput) in raw.items():
        print(f"  {size:>5} {latency_ms:>9.2f} {throughput:>9.0f} {piped[size][0]:>8.2f}")
    print(f"  limit: {limit:.0f} items/s at batch {best_size}")

    row = {"input": np.random.default_rng(0).random((1, 512), dtype=np.float32)}
    json_body = encode_request(row).body
    binary = encode_request(row, binary=True, binary_output=True)
    binary_headers = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(binary.header_length),
    }
    runs: dict[str, list[LoadResult]] = {}
    batches: dict[tuple[str, int], BatchStats] = {}
    http_cpu_us: dict[tuple[str, int], float] = {}
    """CPU time of the server process (not the model process) per request, in microseconds."""
    extra: list[str] = []

    Load = tuple[bytes, dict[str, str]]

    def serve_and_measure(model_process: bool, loads: dict[str, Load]) -> None:
        port = free_port()
        server = start_server(
            [PYTHON, "-m", "inferstack.cli", "serve", "--model", MODEL, "--port", str(port)],
            port,
            env={
                ENV_TORCH_THREADS: str(threads),
                ENV_MAX_BATCH_SIZE: str(args.max_batch_size),
                ENV_MAX_QUEUE_DELAY_MS: str(args.max_queue_delay_ms),
                ENV_MODEL_PROCESS: str(model_process).lower(),
            },
        )
        url = f"http://127.0.0.1:{port}/v2/models/mlp/infer"
        try:
            wrk(url, json_body, 32, 2.0)  # Warm the connections and the allocator.
            for label, (body, headers) in loads.items():
                runs[label] = []
                for clients in (32, 128):
                    before, cpu_before = batch_stats(port), cpu_seconds(server.pid)
                    load = wrk(url, body, clients, args.seconds, headers=headers)
                    runs[label].append(load)
                    batches[label, clients] = batch_stats(port) - before
                    http_cpu_us[label, clients] = (
                        1e6 * (cpu_seconds(server.pid) - cpu_before) / max(load.requests, 1)
                    )
            if model_process and args.perf_analyzer:
                extra.extend(perf_analyzer(port, 32, 5.0))
        finally:
            stop_server(server)

    serve_and_measure(True, {"JSON": (json_body, {}), "binary": (binary.body, binary_headers)})
    # The same load with the model on a thread of the server process, for the comparison.
    serve_and_measure(False, {THREAD_LABEL: (binary.body, binary_headers)})

    batch_ms = raw[args.max_batch_size][0] if args.max_batch_size in raw else best_latency_ms
    p99_target = args.max_queue_delay_ms + 2 * batch_ms
    print(
        f"\nserver: inferstack serve, max_batch_size {args.max_batch_size}, max_queue_delay "
        f"{args.max_queue_delay_ms} ms; wrk -t1; one row of 512 FP32 per request"
    )
    header = (
        *("tensors", "clients", "req/s", "p50 ms", "p99 ms", "errors", "of limit"),
        *("mean batch", "ms/batch", "alone", "server CPU us/req"),
    )
    print("  {:<7} {:>7} {:>8} {:>7} {:>7} {:>6} {:>8} {:>10} {:>8} {:>6} {:>17}".format(*header))
    for label, loads in runs.items():
        for load in loads:
            stats = batches[label, load.connections]
            # The same batch size measured alone, for how much slower compute ran under load.
            nearest = min(raw, key=lambda size: abs(size - stats.mean_batch))
            print(
                f"  {label:<7} {load.connections:>7} {load.rps:>8.0f} {load.p50_ms:>7.2f} "
                f"{load.p99_ms:>7.2f} {load.errors:>6} {load.rps / limit:>8.0%} "
                f"{stats.mean_batch:>10.1f} {stats.ms_per_batch:>8.2f} {raw[nearest][0]:>6.2f} "
                f"{http_cpu_us[label, load.connections]:>17.0f}"
            )
    print(
        "  (mean batch and ms/batch from the server's own metrics during the run; 'alone' is the "
        "raw ms/batch of the nearest measured size; server CPU: the HTTP side's process, user + "
        "system, per request (with bin/thr it includes the model); bin/thr: binary, model on a "
        "server thread)"
    )
    print(
        f"\np99 target at 32 clients: {args.max_queue_delay_ms} ms delay + 2 x {batch_ms:.2f} ms "
        f"(batch {args.max_batch_size}) = {p99_target:.2f} ms; throughput target: 60% of "
        f"{limit:.0f} = {0.6 * limit:.0f} req/s"
    )
    for label, loads in runs.items():
        if label == THREAD_LABEL:
            continue
        at_32, best = loads[0], max(loads, key=lambda load: load.rps)
        print(
            f"  {label:<7} p99 at 32 clients {at_32.p99_ms:.2f} ms: "
            f"{'met' if at_32.p99_ms <= p99_target else 'MISSED'}; best {best.rps:.0f} req/s "
            f"= {best.rps / limit:.0%} of the limit: "
            f"{'met' if best.rps >= 0.6 * limit else 'MISSED'}"
        )
    for line in extra:
        print(line)
    print(f"machine after: {machine_load()}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "threads": threads,
                    "raw": {str(k): {"ms": v[0], "items_per_s": v[1]} for k, v in raw.items()},
                    "pipe_round_trip_ms": {str(k): v[0] for k, v in piped.items()},
                    "limit_items_per_s": limit,
                    "limit_batch_size": best_size,
                    "server": {
                        label: [
                            load.__dict__
                            | {
                                "rps": load.rps,
                                "server_cpu_us_per_request": http_cpu_us[label, load.connections],
                                "mean_batch": batches[label, load.connections].mean_batch,
                                "ms_per_batch": batches[label, load.connections].ms_per_batch,
                            }
                            for load in loads
                        ]
                        for label, loads in runs.items()
                    },
                    "p99_target_ms": p99_target,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
