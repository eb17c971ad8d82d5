"""The server under abuse, in one run: overload, SIGTERM under keep-alive load, a 64 MB body.

1. Overload, with the queue limit at its default and at 64: wrk sweeps 8..128 keep-alive clients
   (one 512-float JSON row per request, `builtin://mlp`, max batch 64, max queue delay 2 ms);
   the smallest count within 90% of the best throughput is the saturating one; then 5x that
   count. Goodput is the server's own success count per second. The p99 of *admitted* requests
   comes from a probe: 4 more keep-alive clients, in this process, sending the same request and
   timing only the answers that were 200 (wrk times 429s and 200s together). With the queue at
   64, a last run with 1000 clients, against the last saturated run.
2. SIGTERM with 16 keep-alive clients posting back to back (reopening their connection whenever
   told to close, until the port refuses it) and 16 idle ones that post once more after
   readiness dropped: requests that got no answer (RST or EOF), and how long the port kept
   accepting after the signal.
3. A 64 MB JSON body (rows of the echo model, so no compute): with the default body limit (the
   JSON worst case of a max batch; 413 at header time), and with the limit raised to allow it:
   peak RSS growth of the server and of its decoder process per MB of body, and the longest
   `GET /v2/health/live` answered meanwhile (whether the decode blocked the event loop).
4. A burst of 1,000 concurrent bodies of 128 rows (about 710 KB each, every one under the body
   limit), with the in-flight body budget at its default (256 MiB) and at 100 GiB (none, in
   effect): the statuses, the server's peak RSS growth and what it keeps after the burst, and
   the longest `GET /v2/health/live` answered meanwhile (probed from a process of its own, a
   new connection every 10 ms, as a kubelet probes), the server event loop's own lag (p99 and
   longest, from a 10 ms tick on it) and the server process's CPU seconds. Each budget twice,
   side by side: as served (responses with `LARGE_RESPONSE_BYTES` of JSON outputs encoded in a
   helper process, bodies from `OFF_LOOP_BYTES` decoded on a thread), and with both thresholds
   patched out of reach in the server process (encoded and decoded on the event loop, as before
   the change).
5. `inferstack work` on Redis (`redis-server`) with four 64 MB messages queued (the echo model
   at a max batch that admits them): the longest `GET /healthz` while it works them, and the
   peak RSS of the worker with its model and decoder processes.

`.venv/bin/python benchmarks/abuse.py` (needs `wrk`). Numbers on a shared 2-core machine move
from run to run; compare the ratios, which are measured side by side.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
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
    free_port,
    machine_load,
    start_server,
    stop_server,
    wrk,
)

from inferstack.contract.env import (  # noqa: E402
    ENV_GRPC_PORT,
    ENV_MAX_BODY_BYTES_IN_FLIGHT,
    ENV_TORCH_THREADS,
)
from inferstack.contract.metrics import REQUESTS  # noqa: E402
from tests.v2_client import encode_request  # noqa: E402

SWEEP = (8, 16, 32, 64, 128)
CROWD = 1000
"""Clients in the last overload run with the queue at 64, as in the issue's measurement."""
PROBES = 4
RESET_ERRORS = (ConnectionError, http.client.HTTPException)


def _serve(port: int, *flags: str) -> list[str]:
    return [PYTHON, "-m", "inferstack.cli", "serve", "--port", str(port), *flags]


def _successes(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(REQUESTS + "_total{") and 'outcome="success"' in line:
                return float(line.split()[-1])
    return 0.0


class Probe:
    """Keep-alive clients that time only the requests the server admitted (status 200)."""

    def __init__(self, port: int, path: str, body: bytes) -> None:
        self.port, self.path, self.body = port, path, body
        self.latencies: list[float] = []
        self.refused = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(PROBES)]

    def _run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"content-type": "application/json"}
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                connection.request("POST", self.path, self.body, headers)
                response = connection.getresponse()
                response.read()
            except RESET_ERRORS:
                connection.close()
                continue
            if response.status == 200:
                self.latencies.append(time.perf_counter() - started)
            else:
                self.refused += 1

    def __enter__(self) -> Probe:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def p99_ms(self) -> float:
        return float(np.percentile(self.latencies, 99) * 1000) if self.latencies else float("nan")


@dataclass
class Load:
    connections: int
    goodput: float
    wrk_rps: float
    admitted_p99_ms: float
    probe_answers: int


def _load(port: int, body: bytes, connections: int, seconds: float) -> Load:
    url = f"http://127.0.0.1:{port}/v2/models/mlp/infer"
    before = _successes(port)
    with Probe(port, "/v2/models/mlp/infer", body) as probe:
        result = wrk(url, body, connections, seconds)
    after = _successes(port)
    return Load(
        connections,
        (after - before) / result.seconds,
        result.requests / result.seconds,
        probe.p99_ms(),
        len(probe.latencies),
    )


def overload(seconds: float, repeats: int) -> None:
    body = encode_request(
        {"input": np.random.default_rng(1).standard_normal((1, 512), dtype=np.float32)}
    ).body
    print("\n1. Overload: goodput and admitted p99 at 5x the saturating concurrency")
    print(
        "| queue limit | run | clients | goodput req/s | all answers req/s (wrk) "
        "| admitted p99 ms | goodput / saturated | p99 / saturated |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for queue in (None, 64):
        port = free_port()
        flags = ["--model", "builtin://mlp", "--max-batch-size", "64", "--max-queue-delay-ms", "2"]
        if queue is not None:
            flags += ["--max-queue-size", str(queue)]
        label = "default (1024)" if queue is None else str(queue)
        process = start_server(_serve(port, *flags), port, {ENV_TORCH_THREADS: "1"})
        try:
            _load(port, body, 8, 2)  # Warm-up.
            sweep = [_load(port, body, count, seconds) for count in SWEEP]
            best = max(load.goodput for load in sweep)
            saturating = next(load for load in sweep if load.goodput >= 0.9 * best).connections
            print(
                f"| {label} | sweep | {', '.join(str(load.connections) for load in sweep)} "
                f"| {', '.join(f'{load.goodput:.0f}' for load in sweep)} | | "
                f"{', '.join(f'{load.admitted_p99_ms:.0f}' for load in sweep)} | | |"
            )
            # Saturated and 5x back to back, repeated: the shared machine's load drifts, and a
            # ratio of neighbours drifts less.
            ratios: list[tuple[float, float]] = []
            for run in range(1, repeats + 1):
                saturated = _load(port, body, saturating, seconds)
                over = _load(port, body, 5 * saturating, seconds)
                ratio = (
                    over.goodput / saturated.goodput,
                    over.admitted_p99_ms / saturated.admitted_p99_ms,
                )
                ratios.append(ratio)
                for load, mark in ((saturated, ""), (over, " (5x)")):
                    print(
                        f"| {label} | {run} | {load.connections}{mark} | {load.goodput:.0f} "
                        f"| {load.wrk_rps:.0f} | {load.admitted_p99_ms:.1f} "
                        + (f"| {ratio[0]:.0%} | {ratio[1]:.2f}x |" if mark else "| | |")
                    )
            if queue is not None:
                # The issue's own case: 1000 clients against a queue of 64.
                crowd = _load(port, body, CROWD, seconds)
                print(
                    f"| {label} | crowd | {CROWD} | {crowd.goodput:.0f} | {crowd.wrk_rps:.0f} "
                    f"| {crowd.admitted_p99_ms:.1f} | {crowd.goodput / saturated.goodput:.0%} "
                    f"| {crowd.admitted_p99_ms / saturated.admitted_p99_ms:.2f}x |"
                )
        finally:
            stop_server(process)
        goodput = sorted(r[0] for r in ratios)[len(ratios) // 2]
        p99 = sorted(r[1] for r in ratios)[len(ratios) // 2]
        print(
            f"| {label} | **median** | | | | | **{goodput:.0%}** (target >= 80%) "
            f"| **{p99:.2f}x** (target <= 2x) |"
        )


def _post_once(connection: http.client.HTTPConnection, body: bytes) -> tuple[int, bool] | None:
    """(status, told to close), or None when the request got no answer."""
    try:
        connection.request("POST", "/v2/models/mlp/infer", body, {"content-type": "a/json"})
        response = connection.getresponse()
        response.read()
    except RESET_ERRORS:
        return None
    return response.status, (response.getheader("connection") or "").lower() == "close"


def sigterm() -> None:
    body = encode_request({"input": np.ones((1, 512), dtype=np.float32)}).body
    port = free_port()
    process = start_server(
        _serve(port, "--model", "builtin://mlp", "--max-queue-delay-ms", "2"),
        port,
        {ENV_TORCH_THREADS: "1"},
    )
    lost = answered = refused = reopened = 0
    last_reopened = 0.0
    lock = threading.Lock()
    warmed = threading.Barrier(17)

    def busy() -> None:
        # Posts back to back; told to close, reopens at once and goes on (as a client pool
        # does), until the port refuses the connection: the requests that met the listener's
        # close are the ones the backlog used to reset.
        nonlocal lost, answered, refused, reopened, last_reopened
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        count = 0
        while True:
            outcome = _post_once(connection, body)
            count += 1
            if count == 5:
                warmed.wait(60)
            with lock:
                lost += outcome is None
                answered += outcome is not None
                refused += outcome is not None and outcome[0] == 503
            if outcome is None:
                return
            if outcome[1]:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                try:
                    connection.connect()
                except ConnectionRefusedError:
                    return  # Not listening any more: refused before anything was sent.
                with lock:
                    reopened += 1
                    last_reopened = time.perf_counter()

    idle = [http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _ in range(16)]
    for connection in idle:
        _post_once(connection, body)
    threads = [threading.Thread(target=busy) for _ in range(16)]
    for thread in threads:
        thread.start()
    warmed.wait(60)
    signalled = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    _wait_until_draining(port)
    for connection in idle:
        outcome = _post_once(connection, body)
        with lock:
            lost += outcome is None
            answered += outcome is not None
    for thread in threads:
        thread.join(60)
    listening = max(last_reopened - signalled, _listening_for(process, port, signalled))
    process.wait(60)
    print("\n2. SIGTERM with 16 busy and 16 idle keep-alive clients")
    print(
        f"requests sent on open connections: {answered} answered ({refused} of them 503), "
        f"{lost} lost (reset or EOF); the busy clients reopened {reopened} connections"
    )
    print(f"port still accepting {listening:.2f} s after SIGTERM; exit code {process.returncode}")


def _wait_until_draining(port: int) -> None:
    """Until readiness answers 503 (or the port is gone)."""
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=5):
                pass
        except OSError:  # HTTPError (503: draining) is one.
            return


def _listening_for(process: subprocess.Popen[bytes], port: int, signalled: float) -> float:
    """How long after `signalled` the port still accepted connections."""
    listening = 0.0
    while process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                listening = time.perf_counter() - signalled
        except OSError:
            break
        time.sleep(0.05)
    return listening


def _rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return found


def _reset_peaks(pids: list[int]) -> None:
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")


LIVENESS_PROBE = """
import sys, time, urllib.request
port, stop = sys.argv[1], sys.argv[2]
worst = 0.0
while True:
    started = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/live", timeout=60):
        pass
    worst = max(worst, time.perf_counter() - started)
    try:
        open(stop).close()
        break
    except FileNotFoundError:
        time.sleep(0.01)
print(worst)
"""
"""A kubelet-like liveness probe (a new connection per probe, every 10 ms) in a process of its
own: in this one it would share the GIL with the 1,000 sending threads and time them too."""


def _send_bodies(port: int, body: bytes, count: int) -> tuple[list[int], float]:
    """Post `body` `count` times at once; the statuses and the longest liveness answer."""
    stop = Path(tempfile.mkdtemp(prefix="inferstack-probe-")) / "stop"
    probe = subprocess.Popen(
        [PYTHON, "-c", LIVENESS_PROBE, str(port), str(stop)], stdout=subprocess.PIPE
    )
    statuses: list[int] = []

    def post() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        outcome = _post_once(connection, body)
        statuses.append(outcome[0] if outcome else 0)

    posts = [threading.Thread(target=post) for _ in range(count)]
    for thread in posts:
        thread.start()
    for thread in posts:
        thread.join(600)
    stop.touch()
    output, _ = probe.communicate(timeout=120)
    shutil.rmtree(stop.parent, ignore_errors=True)
    return statuses, float(output.decode().strip() or "nan")


def large_body(parallel: int) -> None:
    rows = 6100  # About 64 MB as json.dumps writes float32 values.
    values = np.random.default_rng(2).standard_normal((rows, 512)).astype(np.float32)
    body = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [rows, 512],
                    "data": values.ravel().tolist(),
                }
            ]
        }
    ).encode()
    size_mb = len(body) / 1e6
    print(f"\n3. A {size_mb:.0f} MB JSON body ({rows} rows of 512 FP32), a model that echoes")
    env = {"PYTHONPATH": str(Path(__file__).resolve().parent), ENV_TORCH_THREADS: "1"}
    print(
        "| default limit at | bodies at once | status | server peak RSS growth MB | per MB of body "
        "| decoder process peak MB | longest /v2/health/live meanwhile ms |"
    )
    print("|---|---|---|---|---|---|---|")
    for raised in (False, True):
        port = free_port()
        # The default limit follows from max batch x the row's JSON worst case: at a max batch
        # of 64 it refuses this body; at a max batch that holds all its rows it admits it.
        flags = [
            "--model",
            "echo_model:Echo",
            "--model-name",
            "mlp",
            "--max-batch-size",
            str(rows if raised else 64),
        ]
        process = start_server(_serve(port, *flags), port, env)
        models = _children(process.pid)
        try:
            for count in (1, parallel) if raised else (1,):
                before = _rss_mb(process.pid)
                _reset_peaks([process.pid, *_children(process.pid)])
                statuses, worst_live = _send_bodies(port, body, count)
                growth = _rss_peak_mb(process.pid) - before
                decoders = [p for p in _children(process.pid) if p not in models]
                decoder_peak = sum(_rss_peak_mb(p) for p in decoders) if decoders else 0.0
                limit = f"max batch {rows}: fits" if raised else "max batch 64: too large"
                print(
                    f"| {limit} | {count} | {','.join(map(str, sorted(set(statuses))))} "
                    f"| {growth:.0f} | {growth / (size_mb * count):.2f} "
                    f"| {decoder_peak:.0f} | {worst_live * 1000:.0f} |"
                )
        finally:
            stop_server(process)


BURST = 1000
"""Concurrent bodies in the burst, as in the issue's measurement."""


INSTRUMENTED_SERVE = """
import asyncio, runpy, sys, time
import inferstack.runtime.server.lifecycle as lifecycle
import inferstack.runtime.server.routes as routes
on_the_loop, lag_file = sys.argv[1] == "1", sys.argv[2]
del sys.argv[1:3]
if on_the_loop:
    routes.OFF_LOOP_BYTES = routes.LARGE_RESPONSE_BYTES = 1 << 62
original = lifecycle.InferenceServer.serve


async def watch_lag():
    with open(lag_file, "a", buffering=1) as out:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            out.write(f"{time.time()} {time.perf_counter() - started - 0.01}\\n")


async def serve(self):
    watcher = asyncio.get_running_loop().create_task(watch_lag())
    try:
        return await original(self)
    finally:
        watcher.cancel()


lifecycle.InferenceServer.serve = serve
sys.argv[0] = "inferstack"
runpy.run_module("inferstack.cli", run_name="__main__", alter_sys=True)
"""
"""`inferstack serve` with a task on its event loop that writes down how late each 10 ms tick
came (the loop's own lag, free of the probe's scheduling on a loaded machine); with "1" first,
request decoding and response encoding are kept on the event loop, as before they moved off it,
for the side-by-side run."""


def _lag_ms(lag_file: Path, since: float, until: float) -> tuple[float, float]:
    """The p99 and the longest event-loop lag (ms) written between `since` and `until`."""
    lags = []
    for line in lag_file.read_text().splitlines():
        at, lag = (float(field) for field in line.split())
        if since <= at <= until:
            lags.append(lag * 1000)
    if not lags:
        return float("nan"), float("nan")
    return float(np.percentile(lags, 99)), max(lags)


def _cpu_s(pid: int) -> float:
    """User plus system CPU seconds of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def burst(count: int) -> None:
    rows = 128
    values = np.random.default_rng(3).standard_normal((rows, 512)).astype(np.float32)
    body = encode_request({"input": values}).body
    print(
        f"\n4. A burst of {count} concurrent {len(body) / 1e3:.0f} KB bodies, a model that echoes"
    )
    env = {"PYTHONPATH": str(Path(__file__).resolve().parent), ENV_TORCH_THREADS: "1"}
    print(
        "| body budget | coding | statuses | server peak RSS growth MB | kept after the burst MB "
        "| longest /v2/health/live meanwhile ms | event-loop lag p99 / longest ms "
        "| server process CPU s | burst s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    scratch = Path(tempfile.mkdtemp(prefix="inferstack-burst-"))
    for label, budget in (("default (256 MiB)", "0"), ("100 GiB (none)", str(100 << 30))):
        for coding in ("on the event loop (before)", "off the loop (now)"):
            port = free_port()
            flags = ["--model", "echo_model:Echo", "--model-name", "mlp", "--max-batch-size", "128"]
            lag_file = scratch / f"lag-{port}"
            lag_file.touch()
            on_loop = "1" if coding.startswith("on") else "0"
            command = [
                PYTHON, "-c", INSTRUMENTED_SERVE, on_loop, str(lag_file), *_serve(port, *flags)[3:]
            ]  # fmt: skip
            process = start_server(command, port, {**env, ENV_MAX_BODY_BYTES_IN_FLIGHT: budget})
            try:
                before = _rss_mb(process.pid)
                _reset_peaks([process.pid])
                started, cpu = time.time(), _cpu_s(process.pid)
                statuses, worst_live = _send_bodies(port, body, count)
                ended, cpu = time.time(), _cpu_s(process.pid) - cpu
                growth = _rss_peak_mb(process.pid) - before
                kept = _rss_mb(process.pid) - before
                p99_ms, worst_ms = _lag_ms(lag_file, started, ended)
                tally = ", ".join(f"{statuses.count(s)} x {s}" for s in sorted(set(statuses)))
                print(
                    f"| {label} | {coding} | {tally} | {growth:.0f} | {kept:.0f} "
                    f"| {worst_live * 1000:.0f} | {p99_ms:.0f} / {worst_ms:.0f} | {cpu:.1f} "
                    f"| {ended - started:.0f} |",
                    flush=True,
                )
            finally:
                stop_server(process)
    shutil.rmtree(scratch, ignore_errors=True)


WORKER_MESSAGES = 4
"""Maximum-size messages queued at once for the worker run, as in the issue's measurement."""


def _max_size_body(rows: int) -> bytes:
    values = np.random.default_rng(2).standard_normal((rows, 512)).astype(np.float32)
    document = {
        "inputs": [
            {"name": "input", "datatype": "FP32", "shape": [rows, 512], "data": values.tolist()}
        ]
    }
    return json.dumps(document).encode()


def worker_health() -> None:
    """`inferstack work` on Redis with maximum-size messages: its /healthz meanwhile."""
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        print("\n5. skipped: redis-server is not installed")
        return
    rows = 6100
    body = _max_size_body(rows)
    redis_port, health_port = free_port(), free_port()
    redis = subprocess.Popen(
        [redis_bin, "--port", str(redis_port), "--save", "", "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
    )
    try:
        _queue_messages(redis_port, body)
        worst, peak, written = _watch_worker(redis_port, health_port, rows)
    finally:
        redis.terminate()
        redis.wait(30)
    print(f"\n5. The worker with {WORKER_MESSAGES} queued {len(body) / 1e6:.0f} MB messages")
    print(f"results written: {written} of {WORKER_MESSAGES}")
    print(f"longest GET /healthz meanwhile: {worst * 1000:.0f} ms (liveness timeout 3 s)")
    print(f"worker peak RSS (with its model and decoder processes): {peak:.0f} MB")


def _queue_messages(port: int, body: bytes) -> None:
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    for _ in range(WORKER_MESSAGES):
        client.xadd("abuse", {"body": body})


def _watch_worker(redis_port: int, health_port: int, rows: int) -> tuple[float, float, int]:
    """Run the worker until idle: the longest /healthz answer, the peak RSS (MB) and the
    results it wrote."""
    results = Path(tempfile.mkdtemp(prefix="inferstack-abuse-"))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent)}
    process = subprocess.Popen(
        [
            PYTHON, "-m", "inferstack.cli", "work",
            "--queue", f"redis://127.0.0.1:{redis_port}/0?stream=abuse",
            "--model", "echo_model:Echo", "--model-name", "mlp",
            "--max-batch-size", str(rows), "--results", results.as_uri(),
            "--metrics-port", str(health_port), "--exit-when-idle-s", "3",
            "--interruption", "off", "--torch-threads", "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    worst = peak = 0.0
    try:
        while process.poll() is None:
            peak = max(peak, sum(_rss_mb(p) for p in [process.pid, *_children(process.pid)]))
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/healthz", timeout=30):
                    pass
            except urllib.error.HTTPError:
                pass  # 503 (starting, stale) is an answer too.
            except OSError:
                time.sleep(0.05)  # Not listening yet: the model is loading.
                continue
            worst = max(worst, time.perf_counter() - started)
            time.sleep(0.01)
        written = len(list(results.iterdir()))
    finally:
        process.wait(600)
        shutil.rmtree(results, ignore_errors=True)
    return worst, peak, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per wrk run")
    parser.add_argument("--repeats", type=int, default=3, help="saturated/5x pairs per limit")
    parser.add_argument("--parallel", type=int, default=4, help="large bodies at once")
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["overload", "sigterm", "body", "burst", "worker"],
    )
    args = parser.parse_args()
    # HTTP is what is measured; the gRPC port's fixed default would collide between servers.
    os.environ[ENV_GRPC_PORT] = "0"
    print(f"abuse benchmark on {os.cpu_count()} cores; {machine_load()}")
    if "overload" not in args.skip:
        overload(args.seconds, args.repeats)
    if "sigterm" not in args.skip:
        sigterm()
    if "body" not in args.skip:
        large_body(args.parallel)
    if "burst" not in args.skip:
        burst(BURST)
    if "worker" not in args.skip:
        worker_health()
    print(f"\nafter the run: {machine_load()}")


if __name__ == "__main__":
    main()
