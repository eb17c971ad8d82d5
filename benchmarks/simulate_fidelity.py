"""The simulator against the real runtime: the same open-loop step, measured and simulated.

In one run on one machine:
1. `inferstack profile` measures `builtin://mlp` here (batch 1 to 32, one torch thread, in a
   model process as `serve` runs it): the profile the simulation uses;
2. for one and for two replicas, `inferstack serve` processes on loopback (max batch 32,
   preferred 16 and 32, 5 ms max queue delay, queue limit 1024), whose capacity is measured
   first (closed loop, successful answers per second), then driven open-loop: Poisson arrivals
   stepping from 30 % to 90 % of that capacity and back, each request sent to one server chosen
   uniformly at random (as a Service spreads connections), binary tensors, one 512-float row;
3. per 10-s window: throughput (answers per second by send time), p50 and p99 from the moment
   each request was due, measured and simulated (`run_exact` on the same rates, fixed replicas,
   the profile of step 1), and the error.

The simulator models the batcher and the model; it does not model the HTTP layer, the pipe to
the model process or this machine's other load (the client runs on the same two cores). The
measured-minus-simulated gap at low load is that overhead.

    .venv/bin/python benchmarks/simulate_fidelity.py [--replicas 1,2] [--step-seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from loadgen import PYTHON, free_port, machine_load, start_server, stop_server  # noqa: E402

from inferstack.contract.env import (  # noqa: E402
    ENV_MAX_BATCH_SIZE,
    ENV_MAX_QUEUE_DELAY_MS,
    ENV_MAX_QUEUE_SIZE,
    ENV_PREFERRED_BATCH_SIZES,
    ENV_TORCH_THREADS,
)
from inferstack.offline.simulate.config import ColdStart, Prices, RealtimePool, Scenario  # noqa: E402
from inferstack.offline.simulate.engine import run_exact  # noqa: E402
from inferstack.offline.simulate.inputs import compute_model  # noqa: E402
from inferstack.offline.simulate.replica import (  # noqa: E402
    COARSE_RATIO,
    BatcherParams,
    percentile,
)
from inferstack.profile import load_profile  # noqa: E402
from tests.v2_client import encode_request  # noqa: E402

MODEL = "builtin://mlp"
MAX_BATCH = 32
PREFERRED = (16, 32)
DELAY_MS = 5.0
QUEUE_LIMIT = 1024


@dataclass
class Sample:
    due: float
    done: float
    ok: bool


def request_bytes() -> bytes:
    row = {"input": np.random.default_rng(0).random((1, 512), dtype=np.float32)}
    body = encode_request(row, binary=True, binary_output=True)
    head = (
        "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Inference-Header-Content-Length: {body.header_length}\r\n"
        f"Content-Length: {len(body.body)}\r\n\r\n"
    )
    return head.encode() + body.body


class Client:
    """Keep-alive connections per server; one request per connection at a time."""

    def __init__(self, ports: list[int], payload: bytes) -> None:
        self.ports = ports
        self.payload = payload
        self.idle: dict[int, list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {
            port: [] for port in ports
        }
        self.statuses: dict[int, int] = {}
        """Answers by HTTP status; 0: the connection failed."""

    async def send(self, port: int) -> bool:
        """One request; a kept-alive connection the server closed meanwhile is retried once."""
        pool = self.idle[port]
        reused = bool(pool)
        status = await self._send(port, pool.pop() if pool else None)
        if status == 0 and reused:
            status = await self._send(port, None)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        return status == 200

    async def _send(
        self, port: int, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None
    ) -> int:
        try:
            if connection is None:
                connection = await asyncio.open_connection("127.0.0.1", port)
            reader, writer = connection
            writer.write(self.payload)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if b"connection: close" in head.lower():
                writer.close()
            else:
                self.idle[port].append((reader, writer))
            return status
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            if connection is not None:
                connection[1].close()
            return 0

    async def closed_loop(self, workers_per_server: int, seconds: float) -> float:
        """Successful answers per second with back-to-back requests."""
        end = time.perf_counter() + seconds
        done = 0

        async def worker(port: int) -> None:
            nonlocal done
            while time.perf_counter() < end:
                if await self.send(port):
                    done += 1

        await asyncio.gather(*(worker(p) for p in self.ports for _ in range(workers_per_server)))
        return done / seconds

    async def open_loop(self, due: np.ndarray, picks: np.ndarray) -> tuple[list[Sample], float]:
        """Send at the `due` offsets (seconds) to `ports[picks]`; returns samples and lag share."""
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.2
        samples: list[Sample] = []
        late = 0
        tasks = []

        async def one(offset: float, port: int) -> None:
            ok = await self.send(port)
            samples.append(Sample(offset, loop.time() - start, ok))

        for offset, pick in zip(due.tolist(), picks.tolist(), strict=True):
            wait = start + offset - loop.time()
            if wait > 0.0005:
                await asyncio.sleep(wait)
            elif wait < -0.005:
                late += 1
            tasks.append(asyncio.ensure_future(one(offset, self.ports[pick])))
        await asyncio.gather(*tasks)
        return samples, late / max(1, len(due))


def step_rates(capacity: float, low: float, high: float, step_s: int) -> np.ndarray:
    return np.concatenate(
        [
            np.full(step_s, low * capacity),
            np.full(step_s, high * capacity),
            np.full(step_s, low * capacity),
        ]
    )


def poisson_times(rates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    times = []
    for second, rate in enumerate(rates.tolist()):
        count = int(rng.poisson(rate))
        times.append(second + np.sort(rng.random(count)))
    return np.concatenate(times)


def measured_windows(samples: list[Sample], windows: int, width: float) -> list[dict[str, float]]:
    rows = []
    for index in range(windows):
        inside = [s for s in samples if index * width <= s.due < (index + 1) * width]
        latencies = np.array([s.done - s.due for s in inside if s.ok])
        rows.append(
            {
                "throughput": len(latencies) / width,
                "p50_ms": float(np.percentile(latencies, 50) * 1000) if len(latencies) else 0.0,
                "p99_ms": float(np.percentile(latencies, 99) * 1000) if len(latencies) else 0.0,
                "errors": float(len(inside) - len(latencies)),
            }
        )
    return rows


def simulated_windows(
    profile_path: Path, rates: np.ndarray, replicas: int, width: float, seed: int
) -> list[dict[str, float]]:
    pool = RealtimePool(
        batcher=BatcherParams(MAX_BATCH, PREFERRED, DELAY_MS / 1000, QUEUE_LIMIT, None, 1),
        compute=compute_model(load_profile(profile_path)),
        gpus_per_replica=1,
        prices=Prices(1.0, 1.0, 1, "none"),
        latency_budget_s=1.0,
        metric="queue_depth",
        scaler=None,
        fixed_replicas=replicas,
    )
    scenario = Scenario("fidelity", "fixed replicas", pool, None, ColdStart(0, 0, 0, 0))
    run = run_exact(scenario, rates, datetime.now(UTC), seed=seed, bucket_s=width)
    rows = []
    for row in run.recorder.coarse[: int(len(rates) // width)]:
        rows.append(
            {
                "throughput": float(row.sum()) / width,
                "p50_ms": percentile(row, 0.5, COARSE_RATIO) * 1000,
                "p99_ms": percentile(row, 0.99, COARSE_RATIO) * 1000,
            }
        )
    return rows


def profile_here(path: Path, seconds: float) -> None:
    subprocess.run(
        [
            PYTHON,
            "-m",
            "inferstack.cli",
            "profile",
            "--model",
            MODEL,
            "--out",
            str(path),
            "--batch-sizes",
            "1,2,4,8,16,32",
            "--seconds",
            str(seconds),
            "--threads",
            "1",
        ],
        check=True,
        capture_output=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", default="1,2", help="comma-separated replica counts")
    parser.add_argument("--step-seconds", type=int, default=30, help="length of each step")
    parser.add_argument("--window", type=float, default=10.0, help="window seconds")
    parser.add_argument("--low", type=float, default=0.3)
    parser.add_argument("--high", type=float, default=0.9)
    parser.add_argument("--profile-seconds", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(f"machine: {machine_load()}")
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        profile_path = Path(folder, "profile.json")
        profile_here(profile_path, args.profile_seconds)
        points = load_profile(profile_path).batches
        print(
            "profile here: "
            + ", ".join(
                f"b{p.batch_size} p50 {p.latency_ms.p50:.2f} p99 {p.latency_ms.p99:.2f} ms"
                for p in points
            )
        )
        for replicas in [int(n) for n in args.replicas.split(",")]:
            results[replicas] = run_replicas(replicas, profile_path, args)
    errors = [abs(r["p99_error"]) for rows in results.values() for r in rows]
    throughput = [abs(r["throughput_error"]) for rows in results.values() for r in rows]
    print(
        f"\nover all windows: p99 error median {np.median(errors):.1%}, worst {max(errors):.1%} "
        f"(goal 10%); throughput error median {np.median(throughput):.1%}, worst "
        f"{max(throughput):.1%} (goal 5%)"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def run_replicas(replicas: int, profile_path: Path, args: argparse.Namespace) -> list[dict]:
    env = {
        ENV_TORCH_THREADS: "1",
        ENV_MAX_BATCH_SIZE: str(MAX_BATCH),
        ENV_PREFERRED_BATCH_SIZES: ",".join(map(str, PREFERRED)),
        ENV_MAX_QUEUE_DELAY_MS: str(DELAY_MS),
        ENV_MAX_QUEUE_SIZE: str(QUEUE_LIMIT),
    }
    ports = [free_port() for _ in range(replicas)]
    servers = []
    try:
        for port in ports:
            servers.append(
                start_server(
                    [
                        PYTHON,
                        "-m",
                        "inferstack.cli",
                        "serve",
                        "--model",
                        MODEL,
                        "--port",
                        str(port),
                    ],
                    port,
                    env=env,
                )
            )
        client = Client(ports, request_bytes())
        asyncio.run(client.closed_loop(8, 2.0))  # warm connections and the model
        client = Client(ports, request_bytes())
        capacity = asyncio.run(client.closed_loop(32, 6.0))
        rates = step_rates(capacity, args.low, args.high, args.step_seconds)
        rng = np.random.default_rng(args.seed)
        due = poisson_times(rates, rng)
        picks = rng.integers(0, replicas, len(due))
        client = Client(ports, request_bytes())
        samples, late = asyncio.run(client.open_loop(due, picks))
        statuses = client.statuses
    finally:
        for server in servers:
            stop_server(server)
    windows = int(len(rates) // args.window)
    measured = measured_windows(samples, windows, args.window)
    simulated = simulated_windows(profile_path, rates, replicas, args.window, args.seed)
    print(
        f"\n{replicas} replica(s): capacity {capacity:.0f} answers/s (closed loop, 32 "
        f"connections each); {late:.1%} of sends more than 5 ms late; answers by status "
        f"{dict(sorted(statuses.items()))}"
    )
    print(
        f"  {'window':>6} {'offered':>8} {'thr real':>9} {'thr sim':>8} {'p50 real':>9} "
        f"{'p50 sim':>8} {'p99 real':>9} {'p99 sim':>8} {'p99 err':>8} {'errors':>7}"
    )
    rows = []
    for index, (real, sim) in enumerate(zip(measured, simulated, strict=False)):
        offered = float(rates[int(index * args.window)])
        p99_error = (sim["p99_ms"] - real["p99_ms"]) / real["p99_ms"] if real["p99_ms"] else 0.0
        thr_error = (
            (sim["throughput"] - real["throughput"]) / real["throughput"]
            if real["throughput"]
            else 0.0
        )
        print(
            f"  {index * args.window:>5.0f}s {offered:>8.0f} {real['throughput']:>9.0f} "
            f"{sim['throughput']:>8.0f} {real['p50_ms']:>8.1f}  {sim['p50_ms']:>7.1f}  "
            f"{real['p99_ms']:>8.1f}  {sim['p99_ms']:>7.1f} {p99_error:>+8.1%} "
            f"{real['errors']:>7.0f}"
        )
        rows.append(
            {
                "offered": offered,
                "real": real,
                "simulated": sim,
                "p99_error": p99_error,
                "throughput_error": thr_error,
            }
        )
    return rows


if __name__ == "__main__":
    main()
