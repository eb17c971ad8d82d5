"""Result stores against real servers: Redis (SET NX) and the GCS JSON API emulator.

S3 is covered with SQS in test_worker_sqs.py (same moto server). The GCS emulator
(`gcp-storage-emulator`) ignores `ifGenerationMatch`, so write-once on GCS rests on the real
service's documented precondition and is not asserted here; the rest of the store is.
"""

from __future__ import annotations

import warnings

import pytest

from inferstack.runtime.results import ResultStoreConfigError, open_result_store
from tests.integration.conftest import GcsEmulator, RedisServer, unique

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

pytestmark = pytest.mark.integration


def test_redis_results_are_write_once(redis_server: RedisServer) -> None:
    prefix = unique("res") + ":"
    store = open_result_store(f"{redis_server.url}?prefix={prefix}")
    assert store.put_many({"1-0": b"first", "2-0": b"other"}) == {"1-0": True, "2-0": True}
    assert store.put_many({"1-0": b"second"}) == {"1-0": False}
    assert store.get("1-0") == b"first"
    assert store.get("3-0") is None
    assert store.existing(["1-0", "2-0", "3-0"]) == {"1-0", "2-0"}
    assert redis_server.client().get(f"{prefix}1-0") == b"first"


def test_redis_results_refuse_unknown_options(redis_server: RedisServer) -> None:
    with pytest.raises(ResultStoreConfigError, match="the only option is prefix"):
        open_result_store(f"{redis_server.url}?stream=x")


def test_gcs_results_under_a_prefix(
    gcs_emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.endpoint)
    credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
    client = storage.Client(project="test", credentials=credentials)
    bucket = unique("results")
    client.create_bucket(bucket)
    from inferstack.runtime.results.gcs import GcsStore

    store = GcsStore(client, uri=f"gs://{bucket}/run", bucket=bucket, prefix="run")
    assert store.put_many({"17": b'{"a": 1}', "odd/id": b'{"b": 2}'}) == {
        "17": True,
        "odd/id": True,
    }
    assert store.get("17") == b'{"a": 1}'
    assert store.get("18") is None
    assert store.existing(["17", "18", "odd/id"]) == {"17", "odd/id"}
    names = sorted(blob.name for blob in client.list_blobs(bucket))
    assert names == ["run/17.json", "run/odd%2Fid.json"]


def test_result_uri_errors_name_the_fix() -> None:
    with pytest.raises(ResultStoreConfigError, match="file:///DIR"):
        open_result_store("ftp://host/dir")
    with pytest.raises(ResultStoreConfigError, match="absolute directory"):
        open_result_store("file://relative/dir")
    with pytest.raises(ResultStoreConfigError, match="names no bucket"):
        open_result_store("s3://")
