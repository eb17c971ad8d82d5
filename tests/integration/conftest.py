"""Real servers on loopback for integration tests: Redis, an SQS/S3-compatible server, Pub/Sub.

Each fixture starts its server once per session on a free port in a temporary directory, or uses
the one named by an environment variable when CI started it already:
- `INFERSTACK_TEST_REDIS_URL` (e.g. `redis://127.0.0.1:6379/0`): Debian's `redis-server`;
- `INFERSTACK_TEST_SQS_ENDPOINT` (e.g. `http://127.0.0.1:5000`): moto in server mode, which
  speaks the SQS and S3 wire protocols;
- `INFERSTACK_TEST_PUBSUB_EMULATOR` (`host:port`): the Google Cloud Pub/Sub emulator
  (`google-cloud-cli-pubsub-emulator`, a Java program);
- `INFERSTACK_TEST_GCS_ENDPOINT` (e.g. `http://127.0.0.1:9023`): `gcp-storage-emulator`, the
  GCS JSON API in Python.

A missing server program skips the test on a laptop and fails it when `CI=true`: CI must run
every test. tests/servers.py says where each program comes from; `make test` installs them when
it can.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.servers import BY_FIXTURE, PUBSUB_EMULATOR_BIN
from tests.shared_data import require

STARTUP_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None, log: Path) -> None:
    """Block until something accepts on `port`; fail with the server's log if it died."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(
        f"server did not listen on {port} in {STARTUP_TIMEOUT_S} s:\n{log.read_text()}"
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass(frozen=True)
class RedisServer:
    """A running Redis: its URL (database 0)."""

    url: str

    def client(self) -> Any:
        """A redis-py client (typed Any: redis-py's generic client type varies by version)."""
        import redis

        return redis.Redis.from_url(self.url)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """Debian's redis-server on a free loopback port, AOF on (what a result store should use)."""
    external = os.environ.get("INFERSTACK_TEST_REDIS_URL")
    if external:
        yield RedisServer(external)
        return
    binary = shutil.which("redis-server")
    require(binary is not None, BY_FIXTURE["redis_server"].reason())
    assert binary is not None
    directory = tmp_path_factory.mktemp("redis")
    port = free_port()
    log = directory / "redis.log"
    process = subprocess.Popen(
        [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(directory),
            "--appendonly", "yes",
            "--save", "",
            "--logfile", str(log),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        log.touch()
        wait_for_port(port, process, log)
        yield RedisServer(f"redis://127.0.0.1:{port}/0")
    finally:
        stop(process)


@dataclass(frozen=True)
class AwsServer:
    """A running SQS/S3-compatible endpoint and the environment boto3 needs to use it."""

    endpoint: str

    @property
    def environment(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }

    def client(self, service: str) -> Any:
        """A boto3 client for `service` on this endpoint."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@pytest.fixture(scope="session")
def aws_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsServer]:
    """moto in server mode (`python -m moto.server`): a separate process speaking HTTP."""
    external = os.environ.get("INFERSTACK_TEST_SQS_ENDPOINT")
    if external:
        yield AwsServer(external.rstrip("/"))
        return
    try:
        import moto.server  # noqa: F401
    except ImportError:
        require(False, "moto[server] is not installed (pip install 'moto[server]')")
    directory = tmp_path_factory.mktemp("moto")
    port = free_port()
    log = directory / "moto.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=directory,
        )
    try:
        wait_for_port(port, process, log)
        yield AwsServer(f"http://127.0.0.1:{port}")
    finally:
        stop(process)


@pytest.fixture
def aws_env(aws_server: AwsServer, monkeypatch: pytest.MonkeyPatch) -> AwsServer:
    """Points boto3's default chain at the test server for one test."""
    for key, value in aws_server.environment.items():
        monkeypatch.setenv(key, value)
    return aws_server


@dataclass(frozen=True)
class PubSubEmulator:
    """A running Pub/Sub emulator (`host:port`, what PUBSUB_EMULATOR_HOST takes)."""

    host: str
    project: str = "inferstack-test"


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PubSubEmulator]:
    """The Google Cloud Pub/Sub emulator (Debian package google-cloud-cli-pubsub-emulator)."""
    external = os.environ.get("INFERSTACK_TEST_PUBSUB_EMULATOR")
    if external:
        yield PubSubEmulator(external)
        return
    require(BY_FIXTURE["pubsub_emulator"].present(), BY_FIXTURE["pubsub_emulator"].reason())
    directory = tmp_path_factory.mktemp("pubsub")
    port = free_port()
    log = directory / "emulator.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(PUBSUB_EMULATOR_BIN), "--host=127.0.0.1", f"--port={port}"],
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=directory,
        )
    try:
        wait_for_port(port, process, log)
        yield PubSubEmulator(f"127.0.0.1:{port}")
    finally:
        stop(process)


@dataclass(frozen=True)
class GcsEmulator:
    """A running GCS JSON-API emulator (what STORAGE_EMULATOR_HOST takes)."""

    endpoint: str


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsEmulator]:
    """`gcp-storage-emulator` (PyPI), in memory: the GCS JSON API over HTTP."""
    external = os.environ.get("INFERSTACK_TEST_GCS_ENDPOINT")
    if external:
        yield GcsEmulator(external.rstrip("/"))
        return
    try:
        import gcp_storage_emulator  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        require(False, "gcp-storage-emulator is not installed (pip install gcp-storage-emulator)")
    directory = tmp_path_factory.mktemp("gcs")
    port = free_port()
    log = directory / "gcs.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gcp_storage_emulator",
                "start",
                "--host=127.0.0.1",
                f"--port={port}",
                "--in-memory",
            ],  # fmt: skip
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=directory,
        )
    try:
        wait_for_port(port, process, log)
        yield GcsEmulator(f"http://127.0.0.1:{port}")
    finally:
        stop(process)


def unique(prefix: str) -> str:
    """A name no other test uses (queues, streams and buckets are shared per session)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
