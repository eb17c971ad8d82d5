"""Shared pieces of the benchmarks: start a server process, drive it with wrk, read the result.

wrk (C, epoll) is the load generator: on a 2-core machine a Python client eats a core and
reports about half the throughput. Its Lua `done` hook prints one JSON line with the request
count, the latency percentiles and every error class, so nothing is scraped from text tables.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

_LUA = """
wrk.method = "%(method)s"
%(headers)s
local f = assert(io.open("%(body)s", "rb"))
local body = f:read("*a")
f:close()
if #body > 0 then wrk.body = body end
done = function(summary, latency, requests)
  io.write(string.format(
    '\\nWRKJSON {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p90_us": %%d, '
    .. '"p99_us": %%d, "max_us": %%d, "status_errors": %%d, "connect_errors": %%d, '
    .. '"read_errors": %%d, "write_errors": %%d, "timeouts": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout))
end
"""


@dataclass(frozen=True)
class LoadResult:
    """What one wrk run measured."""

    connections: int
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int

    @property
    def rps(self) -> float:
        """Successful requests per second."""
        return (self.requests - self.errors) / self.seconds


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, process: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    """Poll /v2/health/ready until it answers 200; fail if the server exits first."""
    deadline = time.monotonic() + timeout_s
    url = f"http://127.0.0.1:{port}/v2/health/ready"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server on port {port} was not ready after {timeout_s:.0f}s")


def start_server(
    command: Sequence[str], port: int, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a server process and wait until it is ready."""
    process = subprocess.Popen(
        list(command),
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_ready(port, process)
    except RuntimeError:
        process.kill()
        _, stderr = process.communicate()
        sys.stderr.write(stderr.decode(errors="replace")[-4000:])
        raise
    return process


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the server drains), then wait."""
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wrk(
    url: str,
    body: bytes,
    connections: int,
    seconds: float,
    *,
    headers: Mapping[str, str] | None = None,
    threads: int = 1,
    method: str = "POST",
) -> LoadResult:
    """Send `method` with `body` to `url` from `connections` keep-alive connections."""
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    header_lines = "\n".join(
        f'wrk.headers["{name}"] = "{value}"' for name, value in all_headers.items()
    )
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed; apt-get install wrk")
    with tempfile.TemporaryDirectory() as folder:
        body_path = Path(folder, "body.json")
        body_path.write_bytes(body)
        script = Path(folder, "post.lua")
        script.write_text(_LUA % {"method": method, "body": body_path, "headers": header_lines})
        completed = subprocess.run(
            [
                binary,
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                str(script),
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    line = next(
        (line for line in completed.stdout.splitlines() if line.startswith("WRKJSON ")), None
    )
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{completed.stdout}\n{completed.stderr}")
    data = json.loads(line.removeprefix("WRKJSON "))
    errors = sum(
        data[key]
        for key in ("status_errors", "connect_errors", "read_errors", "write_errors", "timeouts")
    )
    return LoadResult(
        connections=connections,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=errors,
    )


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_load() -> str:
    """The 1-minute load average and core count, to say whether numbers were taken under load."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"
