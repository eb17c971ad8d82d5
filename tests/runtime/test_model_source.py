"""The fetch step's own rules with a scripted backend: cache, digest, retries, the one error.

The backends themselves run against real servers in test_model_source_servers.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from inferstack.contract.model_uris import (
    BAKED_MODEL_DIR,
    ModelUriError,
    RemoteModel,
    fetch_problem,
    local_path_problem,
    parse_remote,
)
from inferstack.runtime.model_source import ModelFetchError, RetryPolicy, fetch_model
from inferstack.runtime.model_source.errors import FinalFailure, TransientFailure
from inferstack.runtime.models import ModelLoadError

PAYLOAD = b"not really a model, but bytes with a digest"
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Scripted:
    """A backend that fails as told, then writes PAYLOAD; it records every call."""

    def __init__(self, *failures: Exception, payload: bytes = PAYLOAD) -> None:
        self.failures = list(failures)
        self.payload = payload
        self.calls: list[str] = []

    def __call__(self, remote: RemoteModel, destination: Path) -> None:
        self.calls.append(remote.uri)
        destination.write_bytes(self.payload[:5])  # A partial file, left behind on failure.
        if self.failures:
            raise self.failures.pop(0)
        destination.write_bytes(self.payload)


def _fetch(
    uri: str, tmp_path: Path, backend: Scripted, sleeps: list[float] | None = None, **kw: object
) -> str:
    record: Callable[[float], None] = (sleeps if sleeps is not None else []).append
    return fetch_model(
        uri,
        cache_dir=tmp_path / "cache",
        download=backend,
        sleep=record,
        retry=RetryPolicy(attempts=4, first_delay_s=1, max_delay_s=3),
        **kw,  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------------------------------
# URI forms (the contract's parser)


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("s3://models/t/v3.pt", RemoteModel("s3", "s3://models/t/v3.pt", "models", "t/v3.pt")),
        ("gs://m-1/a.pt2", RemoteModel("gs", "gs://m-1/a.pt2", "m-1", "a.pt2")),
        (
            f"hf://org/repo@{COMMIT}/sub/model.pt",
            RemoteModel(
                "hf", f"hf://org/repo@{COMMIT}/sub/model.pt", "org/repo", "sub/model.pt", COMMIT
            ),
        ),
        (
            "https://example.com/m/model.pt",
            RemoteModel("https", "https://example.com/m/model.pt", "example.com", "m/model.pt"),
        ),
    ],
)  # fmt: skip
def test_remote_uris_parse_into_their_parts(uri: str, parsed: RemoteModel) -> None:
    assert parse_remote(uri) == parsed
    assert parsed.file_name == uri.rsplit("/", 1)[1]


@pytest.mark.parametrize("uri", ["builtin://mlp", "/m/model.pt", "file:///m/a.pt", "pkg.mod:Cls"])
def test_other_uris_are_not_fetched(uri: str) -> None:
    assert parse_remote(uri) is None


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("s3://bucket", "names no object; use s3://BUCKET/KEY"),
        ("gs://bucket/dir/", "names no object; use gs://BUCKET/OBJECT"),
        ("hf://org/repo/model.pt", "has no revision: a branch or tag can move"),
        ("hf://org/repo@main/model.pt", "has revision 'main'"),
        (f"hf://org@{COMMIT}", "is not hf://ORG/REPO@COMMIT/PATH"),
        ("https://example.com/", "names no file"),
    ],
)
def test_malformed_remote_uris_name_the_form(uri: str, message: str) -> None:
    with pytest.raises(ModelUriError, match=message):
        parse_remote(uri)


def test_an_https_model_needs_a_digest_and_a_digest_its_form() -> None:
    assert "add model.sha256" in (fetch_problem("https://h/m.pt", None) or "")
    assert fetch_problem("https://h/m.pt", DIGEST) is None
    assert "is not a sha256 digest" in (fetch_problem("s3://b/m.pt", "abc") or "")
    assert fetch_problem("s3://b/m.pt", None) is None


@pytest.mark.parametrize("uri", ["/home/me/model.pt", "./model.pt", "file:///home/me/model.pt"])
def test_a_local_path_is_refused_with_both_fixes(uri: str) -> None:
    problem = local_path_problem(uri) or ""
    assert "no pod has" in problem
    assert "scripts/image.sh build --model PATH" in problem
    assert "s3://BUCKET/KEY" in problem


@pytest.mark.parametrize(
    "uri", ["builtin://mlp", "s3://b/k.pt", f"file://{BAKED_MODEL_DIR}/m.pt", "pkg.mod:Handler"]
)
def test_what_a_pod_can_reach_is_not_a_local_path(uri: str) -> None:
    assert local_path_problem(uri) is None


# ---------------------------------------------------------------------------------------------
# The fetch step


def test_a_fetched_model_lands_whole_in_the_cache_by_digest(tmp_path: Path) -> None:
    backend = Scripted()
    local = _fetch("s3://b/dir/model.pt", tmp_path, backend, sha256=DIGEST)
    assert local == str(tmp_path / "cache" / DIGEST / "model.pt")
    assert Path(local).read_bytes() == PAYLOAD
    assert sorted(p.name for p in Path(local).parent.iterdir()) == ["model.pt"]


def test_a_cached_file_with_the_digest_is_used_without_a_download(tmp_path: Path) -> None:
    _fetch("s3://b/model.pt", tmp_path, Scripted(), sha256=DIGEST)
    again = Scripted()
    local = _fetch("gs://other/model.pt", tmp_path, again, sha256=DIGEST)
    assert again.calls == []
    assert Path(local).read_bytes() == PAYLOAD


def test_a_damaged_cache_entry_is_fetched_again(tmp_path: Path) -> None:
    local = Path(_fetch("s3://b/model.pt", tmp_path, Scripted(), sha256=DIGEST))
    local.write_bytes(b"truncated")
    backend = Scripted()
    _fetch("s3://b/model.pt", tmp_path, backend, sha256=DIGEST)
    assert backend.calls == ["s3://b/model.pt"]
    assert local.read_bytes() == PAYLOAD


def test_without_a_digest_every_start_downloads(tmp_path: Path) -> None:
    first, second = Scripted(), Scripted()
    _fetch("s3://b/model.pt", tmp_path, first)
    _fetch("s3://b/model.pt", tmp_path, second)
    assert (first.calls, second.calls) == (["s3://b/model.pt"], ["s3://b/model.pt"])


def test_transient_failures_are_retried_with_doubling_waits(tmp_path: Path) -> None:
    sleeps: list[float] = []
    backend = Scripted(TransientFailure("S3 answered 503 SlowDown"), TransientFailure("reset"))
    local = _fetch("s3://b/model.pt", tmp_path, backend, sleeps)
    assert len(backend.calls) == 3
    assert sleeps == [1, 2]
    assert Path(local).read_bytes() == PAYLOAD
    assert [p.name for p in Path(local).parent.iterdir()] == ["model.pt"]  # no partial left


def test_transient_failures_end_in_one_error_after_the_last_attempt(tmp_path: Path) -> None:
    sleeps: list[float] = []
    backend = Scripted(*[TransientFailure("HTTP 503 Service Unavailable")] * 4)
    with pytest.raises(ModelFetchError) as raised:
        _fetch("s3://b/model.pt", tmp_path, backend, sleeps)
    assert str(raised.value) == (
        "cannot fetch model s3://b/model.pt: HTTP 503 Service Unavailable (after 4 attempts)"
    )
    assert sleeps == [1, 2, 3]  # capped at max_delay_s
    assert list((tmp_path / "cache").rglob("*")) == [next((tmp_path / "cache").iterdir())]


def test_a_final_failure_is_not_retried_and_says_the_fix(tmp_path: Path) -> None:
    backend = Scripted(FinalFailure("S3 answered 403 AccessDenied", "grant s3:GetObject"))
    with pytest.raises(ModelLoadError) as raised:  # what every command already reports
        _fetch("s3://b/model.pt", tmp_path, backend)
    assert backend.calls == ["s3://b/model.pt"]
    assert str(raised.value) == (
        "cannot fetch model s3://b/model.pt: S3 answered 403 AccessDenied (on the first "
        "attempt); grant s3:GetObject"
    )


def test_credentials_in_the_uri_or_the_cause_are_redacted(tmp_path: Path) -> None:
    uri = "https://user:hunter2@host/m.pt?X-Amz-Signature=s3cr3t"
    backend = Scripted(FinalFailure(f"HTTP 403 Forbidden at {uri}"))
    with pytest.raises(ModelFetchError) as raised:
        _fetch(uri, tmp_path, backend, sha256=DIGEST)
    message = str(raised.value)
    assert "hunter2" not in message
    assert "s3cr3t" not in message
    assert "https://user:***@host/m.pt?X-Amz-Signature=***" in message


def test_a_digest_mismatch_is_refused_naming_both_digests(tmp_path: Path) -> None:
    wrong = hashlib.sha256(b"the profiled model").hexdigest()
    with pytest.raises(ModelFetchError) as raised:
        _fetch("gs://b/model.pt", tmp_path, Scripted(), sha256=wrong)
    assert str(raised.value).startswith(
        f"model gs://b/model.pt has sha256 {DIGEST}, not the declared {wrong}: refusing to load it"
    )
    assert not (tmp_path / "cache" / wrong / "model.pt").exists()


def test_https_without_a_digest_is_refused_before_any_download(tmp_path: Path) -> None:
    backend = Scripted()
    with pytest.raises(ModelFetchError, match="an https URL needs a sha256 digest"):
        _fetch("https://example.com/model.pt", tmp_path, backend)
    assert backend.calls == []


def test_a_baked_file_is_checked_against_its_digest(tmp_path: Path) -> None:
    baked = tmp_path / "model.pt"
    baked.write_bytes(PAYLOAD)
    assert fetch_model(str(baked), sha256=DIGEST) == str(baked)
    with pytest.raises(ModelFetchError, match="not the declared"):
        fetch_model(f"file://{baked}", sha256="0" * 64)


def test_an_unwritable_cache_says_which_setting_to_change(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ModelFetchError, match="point INFERSTACK_MODEL_CACHE at a writable"):
        fetch_model("s3://b/m.pt", cache_dir=blocker / "cache", download=Scripted())
