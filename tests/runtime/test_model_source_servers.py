"""The fetch step against real servers: moto's S3 server, the GCS JSON-API emulator, and a plain
HTTP server for hf:// (the Hub's resolve URL, via HF_ENDPOINT) and https://; then `inferstack
serve` serving a TorchScript model it fetched from S3 at start-up, digest checked.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from inferstack.runtime.model_source import ModelFetchError, RetryPolicy, fetch_model
from inferstack.runtime.models import SIGNATURE_FILE, load_model
from tests.integration import conftest as servers
from tests.integration.conftest import AwsServer, GcsEmulator, free_port, unique

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning"),
]

REPO = Path(__file__).resolve().parents[2]
# The server fixtures live with the integration tests; these tests are the runtime's own.
aws_server = servers.aws_server
aws_env = servers.aws_env
gcs_emulator = servers.gcs_emulator
COMMIT = "4f1c2a9be0d3c7e6f5a4b3c2d1e0f9a8b7c6d5e4"
QUICK = RetryPolicy(attempts=3, first_delay_s=0.01, max_delay_s=0.02)


class Doubler(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0 + 1.0


@pytest.fixture(scope="module")
def torchscript(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str]:
    """A TorchScript archive with its signature embedded (what a user uploads), and its sha256."""
    path = tmp_path_factory.mktemp("model") / "doubler.pt"
    signature = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 4]}],
    }
    torch.jit.save(
        torch.jit.script(Doubler()), str(path), _extra_files={SIGNATURE_FILE: json.dumps(signature)}
    )
    data = path.read_bytes()
    return data, hashlib.sha256(data).hexdigest()


def _uploaded_to_s3(aws: AwsServer, data: bytes) -> str:
    bucket = unique("models")
    client = aws.client("s3")
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="topic/doubler.pt", Body=data)
    return f"s3://{bucket}/topic/doubler.pt"


def test_an_s3_model_is_fetched_checked_and_loads(
    aws_env: AwsServer, torchscript: tuple[bytes, str], tmp_path: Path
) -> None:
    data, digest = torchscript
    uri = _uploaded_to_s3(aws_env, data)
    local = fetch_model(uri, sha256=digest, cache_dir=tmp_path, retry=QUICK)
    assert Path(local).read_bytes() == data
    model = load_model(local, device="cpu")
    out = model.predict_batch({"x": np.ones((2, 4), np.float32)})
    np.testing.assert_array_equal(out["y"], np.full((2, 4), 3.0, np.float32))


def test_an_s3_digest_mismatch_is_refused_by_name(
    aws_env: AwsServer, torchscript: tuple[bytes, str], tmp_path: Path
) -> None:
    data, digest = torchscript
    uri = _uploaded_to_s3(aws_env, data + b"tampered")
    with pytest.raises(ModelFetchError) as raised:
        fetch_model(uri, sha256=digest, cache_dir=tmp_path, retry=QUICK)
    message = str(raised.value)
    assert message.startswith(f"model {uri} has sha256 ")
    assert f"not the declared {digest}: refusing to load it" in message
    assert list(tmp_path.rglob("doubler.pt")) == []


def test_a_missing_s3_object_is_one_error_without_retries(
    aws_env: AwsServer, tmp_path: Path
) -> None:
    bucket = unique("models")
    aws_env.client("s3").create_bucket(Bucket=bucket)
    with pytest.raises(ModelFetchError) as raised:
        fetch_model(f"s3://{bucket}/nope.pt", cache_dir=tmp_path, retry=QUICK)
    assert str(raised.value) == (
        f"cannot fetch model s3://{bucket}/nope.pt: S3 answered 404 Not Found (on the first "
        "attempt); check the bucket and key (aws s3 ls the URI)"
    )


def test_a_gcs_model_is_fetched_and_checked(
    gcs_emulator: GcsEmulator,
    torchscript: tuple[bytes, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.endpoint)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test")
    data, digest = torchscript
    client = storage.Client(project="test", credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    bucket = unique("models")
    client.create_bucket(bucket)
    client.bucket(bucket).blob("v1/doubler.pt").upload_from_string(data)
    local = fetch_model(f"gs://{bucket}/v1/doubler.pt", sha256=digest, cache_dir=tmp_path)
    assert Path(local).read_bytes() == data
    with pytest.raises(ModelFetchError, match=r"gs://.*/v1/gone\.pt: Cloud Storage answered 404"):
        fetch_model(f"gs://{bucket}/v1/gone.pt", cache_dir=tmp_path, retry=QUICK)


class _Files(http.server.BaseHTTPRequestHandler):
    """Serves `files` by path; `failures[path]` statuses are answered first, one per request."""

    files: dict[str, bytes] = {}
    failures: dict[str, list[int]] = {}
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        pending = self.failures.get(self.path)
        if pending:
            self.send_error(pending.pop(0))
            return
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[str]:
    _Files.files, _Files.failures, _Files.seen = {}, {}, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_hf_model_is_read_from_the_resolve_url_of_its_commit(
    web: str, torchscript: tuple[bytes, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, digest = torchscript
    monkeypatch.setenv("HF_ENDPOINT", web)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    path = f"/acme/doubler/resolve/{COMMIT}/torchscript/doubler.pt"
    _Files.files[path] = data
    _Files.failures[path] = [503]  # retried once
    local = fetch_model(
        f"hf://acme/doubler@{COMMIT}/torchscript/doubler.pt",
        sha256=digest,
        cache_dir=tmp_path,
        retry=QUICK,
    )
    assert Path(local).read_bytes() == data
    assert _Files.seen == [(path, "Bearer hf_secret"), (path, "Bearer hf_secret")]


def test_an_https_model_is_fetched_with_its_digest_and_a_404_says_so(
    web: str, torchscript: tuple[bytes, str], tmp_path: Path
) -> None:
    # http:// here only because the test server has no certificate; the code path is the same.
    data, digest = torchscript
    _Files.files["/m/doubler.pt"] = data
    from inferstack.contract.model_uris import RemoteModel
    from inferstack.runtime.model_source.web import download_web

    remote = RemoteModel("https", f"{web}/m/doubler.pt", "127.0.0.1", "m/doubler.pt")
    target = tmp_path / "doubler.pt"
    download_web(remote, target)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest
    from inferstack.runtime.model_source.errors import FinalFailure

    with pytest.raises(FinalFailure, match="HTTP 404"):
        download_web(RemoteModel("https", f"{web}/m/gone.pt", "h", "m/gone.pt"), target)


def test_serve_fetches_a_torchscript_model_from_s3_and_serves_it(
    aws_server: AwsServer, torchscript: tuple[bytes, str], tmp_path: Path
) -> None:
    data, digest = torchscript
    uri = _uploaded_to_s3(aws_server, data)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "inferstack.cli", "serve", "--port", str(port)],
        cwd=REPO,
        env={
            **os.environ,
            **aws_server.environment,
            "PYTHONPATH": str(REPO),
            "INFERSTACK_MODEL": uri,
            "INFERSTACK_MODEL_SHA256": digest,
            "INFERSTACK_MODEL_CACHE": str(tmp_path / "cache"),
            "INFERSTACK_TORCH_THREADS": "1",
            "INFERSTACK_DEVICE": "cpu",
        },
        stderr=subprocess.PIPE,
    )
    try:
        from tests.runtime.serving import Server, http_status, post_json, wait_until

        server = Server(process, port)

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(process.stderr.read().decode()[-3000:])  # type: ignore[union-attr]
            return http_status(f"{server.url}/v2/health/ready") == 200

        wait_until(ready, "the server to fetch the model and become ready")
        body = {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]
        }
        status, _, answer = post_json(
            f"{server.url}/v2/models/doubler/infer", json.dumps(body).encode()
        )
        assert status == 200, answer
        assert json.loads(answer)["outputs"][0]["data"] == [3.0, 5.0, 7.0, 9.0]
        with urllib.request.urlopen(f"{server.url}/v2/models/doubler", timeout=5) as response:
            assert json.loads(response.read())["platform"] == "pytorch_libtorch"
        assert (tmp_path / "cache" / digest / "doubler.pt").read_bytes() == data
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=60)
    assert f"model {uri} fetched to" in stderr.decode()


def test_serve_refuses_a_tampered_model_in_one_line(
    aws_server: AwsServer, torchscript: tuple[bytes, str], tmp_path: Path
) -> None:
    data, digest = torchscript
    uri = _uploaded_to_s3(aws_server, data + b"x")
    result = subprocess.run(
        [sys.executable, "-m", "inferstack.cli", "serve", "--port", str(free_port())],
        cwd=REPO,
        env={
            **os.environ,
            **aws_server.environment,
            "PYTHONPATH": str(REPO),
            "INFERSTACK_MODEL": uri,
            "INFERSTACK_MODEL_SHA256": digest,
            "INFERSTACK_MODEL_CACHE": str(tmp_path),
            "INFERSTACK_DEVICE": "cpu",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"inferstack serve: cannot load the model: model {uri} has sha256 ")
    assert "Traceback" not in result.stderr


def test_the_profile_of_an_s3_model_records_its_size_and_digest(
    aws_env: AwsServer, torchscript: tuple[bytes, str], tmp_path: Path
) -> None:
    from inferstack.runtime.profiler import measure

    data, digest = torchscript
    uri = _uploaded_to_s3(aws_env, data)
    profile = measure(
        uri,
        [1, 2],
        device="cpu",
        sha256=digest,
        cache_dir=str(tmp_path),
        threads=1,
        seconds_per_size=0.05,
        model_process=False,
    )
    assert profile.model == uri
    assert profile.model_bytes == len(data)
    assert profile.model_digest == f"sha256:{digest}"
    assert profile.model_digest_of == "file"
