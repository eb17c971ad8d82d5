"""Where the model process's core goes under load: variants of one server, side by side.

    .venv/bin/python benchmarks/hot_path.py [--seconds 10] [--rounds 2] [--connections 32 128]
        [--path http-json] [--variant NAME=SERVER-ARGS ...]

Each variant is an `inferstack serve` of the traced MLP with issue 23's knobs (max batch 128,
2 ms, `grpc_protocols.py`'s) plus its own extra arguments (`--variant pinned="--pin-model-cpus"`;
the first variant is the reference, `base=` with none by default). All variants are started
before the first run and stay idle while another is measured; within each round they alternate,
so a busy stretch of a shared machine does not land on one alone. h2load drives each (the
`grpc_protocols.py` client and bodies, closed loop, one request in flight per connection).

Printed per variant and connection count (medians over the rounds):
- requests per second (server's success counter over the run) and h2load's p50/p99;
- mean batch size (`inferstack_batch_size`), mean queue wait, and the model's busy share of the
  wall time (the batcher's `compute` histogram: the pipe round trip plus the forward pass);
- the model process's CPU share of the wall time and its run-queue share (time it was runnable
  but waited for a CPU, from `/proc/<pid>/task/*/schedstat`): a model process that is starved
  shows here, one that waits for work does not;
- CPU per request of the server process (every thread; the model process apart) and of h2load.

The raw limits of the traced file (one torch thread, batch 128; `grpc_protocols.raw_limit`), as
traced and frozen and optimized, are taken once per round while the servers are idle, so a
variant's requests per second read as a share of them.

The servers run with the runtime's default `--optimize auto` (the frozen and optimized graph
when it answers the same and is not slower; `runtime/optimize.py`) unless a variant says
otherwise; what graph optimization is worth end to end:

    .venv/bin/python benchmarks/hot_path.py --variant optimized= --variant loaded="--optimize off"
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from grpc_protocols import MAX_BATCH, PATHS, Target, h2load, raw_limit, traced_mlp  # noqa: E402
from loadgen import PYTHON, REPO, free_port, machine_load, start_server, stop_server  # noqa: E402

from inferstack.contract.metrics import (  # noqa: E402
    BATCH_SIZE,
    COMPUTE_SECONDS,
    QUEUE_WAIT_SECONDS,
    REQUESTS,
)

TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Variant:
    """One server configuration under test."""

    name: str
    args: tuple[str, ...]


@dataclass
class Server:
    """A started variant: its process, ports and model process."""

    variant: Variant
    process: subprocess.Popen[bytes]
    target: Target
    metrics_url: str
    model_pid: int


@dataclass(frozen=True)
class Sample:
    """Counters read at one moment."""

    at: float
    metrics: dict[str, float]
    server_cpu_s: float
    model_cpu_s: float
    model_run_ns: int
    model_wait_ns: int
    children_cpu_s: float


@dataclass(frozen=True)
class Result:
    """One run of one variant at one connection count."""

    variant: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    mean_batch: float
    queue_wait_ms: float
    model_busy: float
    model_cpu: float
    model_waiting: float
    server_us: float
    client_us: float


def _variant(text: str) -> Variant:
    name, _, args = text.partition("=")
    if not name:
        raise argparse.ArgumentTypeError(f"expected NAME=SERVER-ARGS, got {text!r}")
    return Variant(name, tuple(shlex.split(args)))


def scrape(url: str) -> dict[str, float]:
    """Every sample of a Prometheus exposition, keyed by its line's name and labels."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


def _metric(values: dict[str, float], name: str, label: str = "") -> float:
    return sum(value for key, value in values.items() if key.startswith(name) and label in key)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _schedstat(pid: int) -> tuple[int, int]:
    """Nanoseconds on a CPU and waiting on a run queue, every thread of `pid` together."""
    run = wait = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "schedstat").read_text().split()
        except FileNotFoundError:  # The thread ended meanwhile.
            continue
        run += int(fields[0])
        wait += int(fields[1])
    return run, wait


def model_pid(server: int) -> int:
    """The server's model process: its child with the largest resident set (torch loaded)."""
    best, best_rss = 0, -1
    for task in Path(f"/proc/{server}/task").iterdir():
        for child in (task / "children").read_text().split():
            status = Path(f"/proc/{child}/status").read_text()
            rss = next(
                (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")),
                0,
            )
            if rss > best_rss:
                best, best_rss = int(child), rss
    if not best:
        raise RuntimeError(f"server {server} has no child process: is model_process on?")
    return best


def start(variant: Variant) -> Server:
    """`inferstack serve` of the traced MLP with the issue's knobs and the variant's arguments."""
    http_port, grpc_port = free_port(), free_port()
    command = [PYTHON, "-m", "inferstack.cli", "serve", "--model", str(traced_mlp())]
    command += ["--port", str(http_port), "--grpc-port", str(grpc_port)]
    command += ["--max-batch-size", str(MAX_BATCH), "--max-queue-delay-ms", "2"]
    command += ["--max-queue-size", "4096", *variant.args]
    process = start_server(command, http_port, env={"PYTHONPATH": str(REPO)})
    url = f"http://127.0.0.1:{http_port}/metrics"
    target = Target(
        variant.name,
        http_port,
        grpc_port,
        lambda: _metric(scrape(url), f"{REQUESTS}_total{{", 'outcome="success"'),
    )
    return Server(variant, process, target, url, model_pid(process.pid))


def sample(server: Server) -> Sample:
    """The counters this benchmark differences, read now."""
    run, wait = _schedstat(server.model_pid)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Sample(
        time.monotonic(),
        scrape(server.metrics_url),
        _cpu_s(server.process.pid),
        _cpu_s(server.model_pid),
        run,
        wait,
        children.ru_utime + children.ru_stime,
    )


def measure(server: Server, path: str, connections: int, seconds: float) -> Result:
    """One h2load run against `server`, with the counters around it."""
    before = sample(server)
    run = h2load(path, server.target, connections, seconds)
    after = sample(server)
    wall = after.at - before.at

    def delta(name: str, label: str = "") -> float:
        return _metric(after.metrics, name, label) - _metric(before.metrics, name, label)

    done = delta(f"{REQUESTS}_total{{", 'outcome="success"')
    batches = delta(f"{BATCH_SIZE}_count")
    waited = delta(f"{QUEUE_WAIT_SECONDS}_count")
    # The server's own /proc figure includes its children only once they are waited for; the
    # model process is alive, so this is the server process alone.
    return Result(
        server.variant.name,
        connections,
        done / wall,
        run.p50_ms,
        run.p99_ms,
        delta(f"{BATCH_SIZE}_sum") / batches if batches else 0.0,
        delta(f"{QUEUE_WAIT_SECONDS}_sum") / waited * 1000 if waited else 0.0,
        delta(f"{COMPUTE_SECONDS}_sum") / wall,
        (after.model_cpu_s - before.model_cpu_s) / wall,
        (after.model_wait_ns - before.model_wait_ns) / 1e9 / wall,
        (after.server_cpu_s - before.server_cpu_s) / done * 1e6 if done else 0.0,
        (after.children_cpu_s - before.children_cpu_s) / done * 1e6 if done else 0.0,
    )


def report(results: list[Result], variants: list[Variant], connections: list[int]) -> None:
    """Medians per variant and connection count, requests per second against the first."""
    print(
        f"{'variant':<14} {'conns':>5} {'req/s':>7} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'batch':>6} {'wait':>5} {'busy':>6} {'m.cpu':>6} {'m.wait':>6} {'srv us':>7} "
        f"{'h2l us':>7}"
    )
    for count in connections:
        reference = 0.0
        for variant in variants:
            mine = [r for r in results if (r.variant, r.connections) == (variant.name, count)]

            def median(field: str, mine: list[Result] = mine) -> float:
                return float(statistics.median(getattr(r, field) for r in mine))

            rps = median("rps")
            reference = reference or rps
            print(
                f"{variant.name:<14} {count:>5} {rps:>7.0f} {rps / reference:>5.2f}x "
                f"{median('p50_ms'):>7.1f} {median('p99_ms'):>7.1f} {median('mean_batch'):>6.1f} "
                f"{median('queue_wait_ms'):>5.1f} "
                f"{median('model_busy'):>6.1%} {median('model_cpu'):>6.1%} "
                f"{median('model_waiting'):>6.1%} {median('server_us'):>7.0f} "
                f"{median('client_us'):>7.0f}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--connections", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--path", choices=PATHS, default="http-json")
    parser.add_argument(
        "--variant",
        type=_variant,
        action="append",
        help="NAME=SERVER-ARGS, repeatable; default: one variant 'base' with no extra arguments",
    )
    parser.add_argument("--raw-seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    variants: list[Variant] = args.variant or [Variant("base", ())]
    servers: list[Server] = []
    results: list[Result] = []
    limits: list[float] = []
    optimized_limits: list[float] = []
    try:
        for variant in variants:
            servers.append(start(variant))
        for _ in range(args.rounds):
            limits.append(raw_limit(args.raw_seconds))
            optimized_limits.append(raw_limit(args.raw_seconds, optimized=True))
            for connections in args.connections:
                for server in servers:
                    results.append(measure(server, args.path, connections, args.seconds))
    finally:
        for server in servers:
            stop_server(server.process)
    print(f"traced MLP, {args.path}, one 512-float row per request; {machine_load()}")
    report(results, variants, args.connections)
    limit, optimized = statistics.median(limits), statistics.median(optimized_limits)
    print(
        f"raw limit (traced file, 1 torch thread, batch {MAX_BATCH}): {limit:,.0f} samples/s as "
        f"traced, {optimized:,.0f} frozen and optimized ({optimized / limit:.2f}x)"
    )
    print(
        "batch: mean rows per batch; wait: mean queue wait (ms); busy: batcher compute time / "
        "wall; m.cpu, m.wait: model process on a CPU / waiting for one; "
        "srv us, h2l us: CPU per request of the server process and of h2load"
    )
    print(f"({args.rounds} round(s) of {args.seconds:g} s per variant, medians)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
