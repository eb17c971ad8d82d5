"""HTTP JSON, HTTP binary tensors and gRPC against one `inferstack serve`, in one run.

    .venv/bin/python benchmarks/grpc_protocols.py [--seconds 10] [--rounds 1] [--triton]
        [--triton-optimized] [--optimize auto|off]

One server process (builtin://mlp, max batch 128, max queue delay 2 ms, the issue's knobs) serves
both ports; one load generator drives all three paths, so that the ratios compare the protocols
and not two clients: h2load (Debian `nghttp2-client`, C), HTTP/1.1 keep-alive (`--h1`) for the
REST paths and HTTP/2 for gRPC, closed loop, one request in flight per connection (as wrk), each
request one 512-float row. The gRPC body is the length-prefixed `ModelInferRequest` that
`tritonclient.grpc` sends (raw_input_contents), to `/inference.GRPCInferenceService/ModelInfer`.

h2load counts an HTTP 200 as a success, and gRPC answers 200 with the status in its trailers, so
the successes are read from the server's own counter (`inferstack_requests_total`,
outcome="success") around each run; a run whose successes fall short of h2load's count fails.
Latency percentiles come from h2load's per-request log. Paths alternate within each round.

The model is builtin://mlp traced to TorchScript (`torch.jit.trace`, as `triton_server.py`
traces it for Triton), served from that file. The raw limit is that file in one torch thread
(what the model process gets on 2 cores), batches of the max batch size back to back, in a
process of its own while the servers are idle: samples per second, for the graph as traced and
for it frozen and optimized (`runtime/optimize.py`'s transform). Each path's share of both at
the largest connection count is printed with the table (one row per request, so requests per
second are samples per second).

`inferstack serve` runs with `--optimize` as given (default `auto`, the runtime's default: the
frozen and optimized graph when it answers the same and is not slower at the warm-up sizes; its
log says which). `--triton` adds Triton 2.51 (`triton_server.py`: from the nvidia-pytriton
wheel, python backend, same model and knobs) on its own ports, each path run against every
server back to back; its successes come from its own counter (`nv_inference_request_success`).
`--triton-optimized` (with `--triton`) adds a column: the same Triton serving the model frozen
and optimized the same way (`triton-opt`, model `mlp_optimized`), so that the ratio at equal
model compute sits beside the ratio to Triton as-is.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import PYTHON, REPO, free_port, machine_load, start_server, stop_server  # noqa: E402

from inferstack.contract.metrics import REQUESTS  # noqa: E402
from inferstack.runtime.grpc.generated import open_inference_grpc_pb2 as pb  # noqa: E402

MODEL = "mlp"
"""The served name, in every server (Triton's as-is model too)."""
MAX_BATCH = 128
TRACED = REPO / ".bench" / "mlp" / "mlp.pt"
ROW = np.random.default_rng(0).standard_normal((1, 512)).astype(np.float32)
PATHS = ("http-json", "http-binary", "grpc")


@dataclass(frozen=True)
class Target:
    """A server under test: its ports and its own count of successful inferences."""

    name: str
    http_port: int
    grpc_port: int
    successes: Callable[[], float]
    model: str = MODEL
    """The model's name in the URL and the gRPC request."""


@dataclass(frozen=True)
class Run:
    """One h2load run against one path of one server."""

    server: str
    path: str
    connections: int
    succeeded: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        """Requests the server answered with success, per second."""
        return self.succeeded / self.seconds


def bodies(model: str = MODEL) -> dict[str, tuple[bytes, list[str], str]]:
    """Each path's body, headers and URL path, to `model`."""
    json_body = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [1, 512],
                    "data": ROW.ravel().tolist(),
                }
            ]
        }
    ).encode()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [1, 512],
                    "parameters": {"binary_data_size": ROW.nbytes},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    request = pb.ModelInferRequest(model_name=model, raw_input_contents=[ROW.tobytes()])
    request.inputs.add(name="input", datatype="FP32", shape=[1, 512])
    message = request.SerializeToString()
    infer = f"/v2/models/{model}/infer"
    return {
        "http-json": (json_body, ["content-type: application/json"], infer),
        "http-binary": (
            header + ROW.tobytes(),
            [
                "content-type: application/octet-stream",
                f"inference-header-content-length: {len(header)}",
            ],
            infer,
        ),
        "grpc": (
            b"\0" + len(message).to_bytes(4, "big") + message,
            ["content-type: application/grpc", "te: trailers"],
            "/inference.GRPCInferenceService/ModelInfer",
        ),
    }


def counter(url: str, prefix: str, label: str) -> float:
    """A counter's value from a Prometheus exposition: the line starting `prefix` with `label`."""
    with urllib.request.urlopen(url, timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(prefix) and label in line:
                return float(line.split()[-1])
    return 0.0


def h2load(path: str, target: Target, connections: int, seconds: float) -> Run:
    """One closed-loop run; successes from the server's counter."""
    body, headers, url_path = bodies(target.model)[path]
    binary = shutil.which("h2load")
    if binary is None:
        raise RuntimeError("h2load is not installed; apt-get install nghttp2-client")
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder, "body")
        data.write_bytes(body)
        log = Path(folder, "log")
        command = [
            binary,
            f"--clients={connections}",
            "--max-concurrent-streams=1",
            "--threads=1",
            f"--duration={seconds:g}",
            "--warm-up-time=2",
            f"--data={data}",
            f"--log-file={log}",
            *(item for header in headers for item in ("-H", header)),
            f"http://127.0.0.1:{target.grpc_port if path == 'grpc' else target.http_port}"
            f"{url_path}",
        ]
        if path != "grpc":
            command.insert(1, "--h1")
        before = target.successes()
        completed = subprocess.run(command, capture_output=True, text=True, check=True)
        after = target.successes()
        # Log lines: start time (us), status, duration (us); warm-up requests are not logged.
        durations = [
            int(line.split("\t")[2]) / 1000 for line in log.read_text().splitlines() if line
        ]
    done = re.search(
        r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", completed.stdout
    )
    if done is None or not durations:
        raise RuntimeError(f"h2load printed no result:\n{completed.stdout}\n{completed.stderr}")
    logged = len(durations)
    if after - before < logged:
        raise RuntimeError(
            f"{target.name} {path}: h2load logged {logged} answers but the server counted "
            f"{after - before:.0f} successes"
        )
    quantiles = np.percentile(durations, [50, 99])
    return Run(
        target.name, path, connections, logged, seconds, float(quantiles[0]), float(quantiles[1])
    )


def traced_mlp() -> Path:
    """builtin://mlp traced to TorchScript with its signature embedded (built on first use)."""
    if not TRACED.exists():
        import torch

        from inferstack.runtime.models import SIGNATURE_FILE, build_mlp

        signature = {
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 512]}],
            "outputs": [{"name": "output", "datatype": "FP32", "shape": [-1, 512]}],
        }
        TRACED.parent.mkdir(parents=True, exist_ok=True)
        trace: Any = torch.jit.trace  # Untyped in torch's stubs.
        traced = trace(build_mlp(), torch.zeros(1, 512))
        traced.save(str(TRACED), _extra_files={SIGNATURE_FILE: json.dumps(signature)})
    return TRACED


RAW_LIMIT = """
import sys, time, warnings
import torch
from inferstack.runtime.optimize import freeze_and_optimize
torch.set_num_threads(1)
torch.set_num_interop_threads(1)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    model = torch.jit.load(sys.argv[1]).eval()
if sys.argv[4] == "optimized":
    model = freeze_and_optimize(model)
batch = torch.randn(int(sys.argv[2]), 512)
seconds = float(sys.argv[3])
with torch.inference_mode():
    for _ in range(5):
        model(batch)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        model(batch).numpy()
        done += 1
    print(done * batch.shape[0] / (time.perf_counter() - started))
"""


def raw_limit(seconds: float, *, optimized: bool = False) -> float:
    """Samples per second of the traced file alone: one torch thread, max-size batches; with
    `optimized`, of its frozen and optimized graph (`optimize.freeze_and_optimize`)."""
    graph = "optimized" if optimized else "traced"
    completed = subprocess.run(
        [PYTHON, "-c", RAW_LIMIT, str(traced_mlp()), str(MAX_BATCH), f"{seconds:g}", graph],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(completed.stdout.split()[-1])


def start_inferstack(optimize: str = "auto") -> tuple[subprocess.Popen[bytes], list[Target]]:
    """`inferstack serve` of the traced MLP with the issue's knobs on two free ports."""
    http_port, grpc_port = free_port(), free_port()
    command = [PYTHON, "-m", "inferstack.cli", "serve", "--model", str(traced_mlp())]
    command += ["--optimize", optimize]
    command += ["--port", str(http_port), "--grpc-port", str(grpc_port)]
    command += [
        "--max-batch-size",
        str(MAX_BATCH),
        "--max-queue-delay-ms",
        "2",
        "--max-queue-size",
        "4096",
    ]
    process = start_server(command, http_port, env={"PYTHONPATH": str(REPO)})
    url = f"http://127.0.0.1:{http_port}/metrics"
    return process, [
        Target(
            "inferstack",
            http_port,
            grpc_port,
            lambda: counter(url, f"{REQUESTS}_total{{", 'outcome="success"'),
        )
    ]


def start_triton(optimized: bool = False) -> tuple[subprocess.Popen[bytes], list[Target]]:
    """Triton 2.51 with the same model and knobs (`triton_server.py`): `triton` serves the graph
    as traced; with `optimized`, `triton-opt` the same graph frozen and optimized."""
    import triton_server

    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    process = triton_server.start(http_port, grpc_port, metrics_port, optimized=optimized)
    url = f"http://127.0.0.1:{metrics_port}/metrics"

    def target(name: str, model: str) -> Target:
        # The closing quote: model="mlp" must not also count model="mlp_optimized".
        label = f'model="{model}"'
        return Target(
            name,
            http_port,
            grpc_port,
            lambda: counter(url, "nv_inference_request_success{", label),
            model,
        )

    targets = [target("triton", triton_server.MODEL)]
    if optimized:
        targets.append(target("triton-opt", triton_server.OPTIMIZED_MODEL))
    return process, targets


def report(runs: list[Run], connections: list[int], servers: list[str]) -> None:
    """Medians per server, path and connection count; ratios to JSON, to Triton as-is and (when
    measured) to Triton with the optimized graph."""
    references = [name for name in ("triton", "triton-opt") if name in servers]
    print(
        f"{'server':<11} {'path':<12} {'conns':>5} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'vs JSON':>8}" + "".join(f" {'vs ' + name:>13}" for name in references)
    )

    def median(server: str, path: str, count: int, field: str) -> float:
        values = [
            getattr(r, field)
            for r in runs
            if (r.server, r.path, r.connections) == (server, path, count)
        ]
        return float(statistics.median(values))

    for count in connections:
        for path in PATHS:
            for server in servers:
                rps = median(server, path, count, "rps")
                versus = rps / median(server, "http-json", count, "rps")
                against = "".join(
                    f" {rps / median(name, path, count, 'rps'):>12.2f}x" for name in references
                )
                print(
                    f"{server:<11} {path:<12} {count:>5} {rps:>8.0f} "
                    f"{median(server, path, count, 'p50_ms'):>7.1f} "
                    f"{median(server, path, count, 'p99_ms'):>7.1f} {versus:>7.2f}x{against}"
                )


def shares(
    runs: list[Run], connections: int, limit: float, optimized: float, servers: list[str]
) -> None:
    """Each path's requests per second (one row each) as a share of the raw limits: the graph
    as traced (`limit`) and frozen and optimized (`optimized`)."""
    print(
        f"raw limit (traced file, 1 torch thread, batch {MAX_BATCH}): {limit:,.0f} samples/s as "
        f"traced, {optimized:,.0f} frozen and optimized ({optimized / limit:.2f}x); "
        f"share at {connections} connections (of traced / of optimized):"
    )
    for server in servers:
        for path in PATHS:
            rps = statistics.median(
                r.rps
                for r in runs
                if (r.server, r.path, r.connections) == (server, path, connections)
            )
            print(f"  {server:<11} {path:<12} {rps / limit:>6.1%} {rps / optimized:>6.1%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--connections", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--triton", action="store_true", help="Triton 2.51 side by side")
    parser.add_argument(
        "--triton-optimized",
        action="store_true",
        help="with --triton: also Triton serving the graph frozen and optimized (triton-opt)",
    )
    parser.add_argument(
        "--optimize",
        choices=["auto", "off"],
        default="auto",
        help="inferstack serve's --optimize (default auto, the runtime's default)",
    )
    parser.add_argument(
        "--raw-seconds", type=float, default=5.0, help="length of each raw-limit measurement"
    )
    args = parser.parse_args(argv)
    if args.triton_optimized and not args.triton:
        parser.error("--triton-optimized adds a Triton column: give --triton too")
    processes: list[subprocess.Popen[bytes]] = []
    targets: list[Target] = []
    runs: list[Run] = []
    limits: list[float] = []
    optimized_limits: list[float] = []
    starters: list[Callable[[], tuple[subprocess.Popen[bytes], list[Target]]]] = [
        lambda: start_inferstack(args.optimize)
    ]
    if args.triton:
        starters.append(lambda: start_triton(args.triton_optimized))
    try:
        for starter in starters:
            process, started = starter()
            processes.append(process)
            targets.extend(started)
        for _ in range(args.rounds):
            # The servers are idle meanwhile.
            limits.append(raw_limit(args.raw_seconds))
            optimized_limits.append(raw_limit(args.raw_seconds, optimized=True))
            for connections in args.connections:
                for path in PATHS:
                    for target in targets:
                        runs.append(h2load(path, target, connections, args.seconds))
    finally:
        for process in processes:
            stop_server(process)
    print(
        f"builtin://mlp traced, one 512-float row per request, inferstack --optimize "
        f"{args.optimize}; {machine_load()}"
    )
    report(runs, args.connections, [target.name for target in targets])
    shares(
        runs,
        max(args.connections),
        statistics.median(limits),
        statistics.median(optimized_limits),
        [t.name for t in targets],
    )
    print(f"({args.rounds} round(s) of {args.seconds:g} s per path, medians; h2load closed loop)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
