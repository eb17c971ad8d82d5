"""`fetch_model`: the cache layout, the digest check and the retry loop around one backend."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from inferstack.contract.model_uris import (
    SHA256_FORM,
    ModelUriError,
    RemoteModel,
    is_sha256,
    parse_remote,
)
from inferstack.runtime.model_source.digest import file_sha256
from inferstack.runtime.model_source.errors import FetchFailure, ModelFetchError
from inferstack.runtime.redaction import redact_text, redact_uri

log = logging.getLogger("inferstack.runtime.model_source")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transient failure is retried.

    The defaults wait 1, 2, 4 and 8 s between five attempts (15 s in all): longer than a
    throttling burst or a restarting endpoint, shorter than the minutes a pod's start-up probe
    allows a large model.
    """

    attempts: int = 5
    first_delay_s: float = 1.0
    max_delay_s: float = 30.0

    def delay_s(self, failed_attempts: int) -> float:
        """The wait after the `failed_attempts`-th failure: doubling, capped."""
        return min(self.max_delay_s, self.first_delay_s * 2.0 ** (failed_attempts - 1))


DEFAULT_RETRY: Final = RetryPolicy()


class Download(Protocol):
    """A backend: write the remote file to `destination` or raise a FetchFailure."""

    def __call__(self, remote: RemoteModel, destination: Path) -> None:
        """Write the file `remote` names to `destination`; raise a FetchFailure if not."""


def default_cache_dir() -> Path:
    """Where fetched models go when INFERSTACK_MODEL_CACHE is unset: the user's cache folder
    (`$XDG_CACHE_HOME/inferstack/models`, else `~/.cache/inferstack/models`)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "inferstack" / "models"


def fetch_model(
    uri: str,
    *,
    sha256: str | None = None,
    cache_dir: str | Path | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
    sleep: Callable[[float], None] = time.sleep,
    download: Download | None = None,
) -> str:
    """The URI to load `uri` from: a local file in the cache for a fetched scheme, else `uri`.

    With `sha256`, a local file (a model baked into the image) is checked too. Raises
    ModelFetchError naming the URI and the cause. Blocking: call it off the event loop.
    `download` replaces the scheme's backend (tests).
    """
    shown = redact_uri(uri)
    if sha256 is not None and not is_sha256(sha256):
        raise ModelFetchError(
            f"model digest {sha256!r} for {shown} is not a sha256 digest; write {SHA256_FORM}"
        )
    try:
        remote = parse_remote(uri)
    except ModelUriError as error:
        raise ModelFetchError(redact_text(str(error))) from None
    if remote is None:
        local = Path(uri.removeprefix("file://"))
        if sha256 is not None and local.is_file():
            _check_digest(local, sha256, shown)
        return uri
    if remote.scheme == "https" and sha256 is None:
        raise ModelFetchError(
            f"cannot fetch model {shown}: an https URL needs a sha256 digest (what it serves can "
            f"change); set INFERSTACK_MODEL_SHA256 / --model-sha256 (model.sha256 in the spec)"
        )
    target = _cache_path(Path(cache_dir) if cache_dir else default_cache_dir(), remote, sha256)
    if sha256 is not None and target.is_file():
        if file_sha256(target) == sha256:
            log.info("model %s found in the cache at %s (sha256 %s)", shown, target, sha256)
            return str(target)
        target.unlink()  # A damaged cache entry: fetch it again.
    _download_with_retries(remote, target, shown, retry, sleep, download or _backend(remote))
    if sha256 is not None:
        try:
            _check_digest(target, sha256, shown)
        except ModelFetchError:
            target.unlink(missing_ok=True)
            raise
    return str(target)


def _cache_path(cache_dir: Path, remote: RemoteModel, sha256: str | None) -> Path:
    """`<cache>/<digest>/<file>`: by content when the digest is known (another URI with the same
    file reuses it), else by the URI's own digest (a different object never collides)."""
    import hashlib

    key = sha256 or "uri-" + hashlib.sha256(remote.uri.encode()).hexdigest()[:32]
    return cache_dir / key / remote.file_name


def _download_with_retries(
    remote: RemoteModel,
    target: Path,
    shown: str,
    retry: RetryPolicy,
    sleep: Callable[[float], None],
    download: Download,
) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ModelFetchError(
            f"cannot fetch model {shown}: the cache folder {target.parent} cannot be made "
            f"({error.strerror}); point INFERSTACK_MODEL_CACHE at a writable volume"
        ) from None
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    started = time.monotonic()
    for attempt in range(1, retry.attempts + 1):
        try:
            download(remote, partial)
        except FetchFailure as failure:
            partial.unlink(missing_ok=True)
            if not failure.transient or attempt == retry.attempts:
                raise _fetch_error(shown, failure, attempt) from None
            delay = retry.delay_s(attempt)
            log.warning(
                "fetching model %s failed (attempt %d of %d: %s); retrying in %.0f s",
                shown,
                attempt,
                retry.attempts,
                redact_text(failure.cause),
                delay,
            )
            sleep(delay)
            continue
        except BaseException:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise
        partial.replace(target)
        size = target.stat().st_size
        log.info(
            "model %s fetched to %s: %d bytes in %.1f s (attempt %d)",
            shown,
            target,
            size,
            time.monotonic() - started,
            attempt,
        )
        return


def _fetch_error(shown: str, failure: FetchFailure, attempts: int) -> ModelFetchError:
    tries = f"after {attempts} attempts" if attempts > 1 else "on the first attempt"
    message = f"cannot fetch model {shown}: {failure.cause} ({tries})"
    if failure.fix:
        message += f"; {failure.fix}"
    return ModelFetchError(redact_text(message))


def _check_digest(path: Path, sha256: str, shown: str) -> None:
    actual = file_sha256(path)
    if actual != sha256:
        raise ModelFetchError(
            f"model {shown} has sha256 {actual}, not the declared {sha256}: refusing to load it. "
            "If the model was replaced on purpose, profile it again and declare its new digest "
            "(model.sha256 / INFERSTACK_MODEL_SHA256); otherwise find who changed it"
        )


def _backend(remote: RemoteModel) -> Download:
    """The scheme's download function, imported only when its scheme is used."""
    try:
        return _import_backend(remote)
    except ImportError as error:
        raise ModelFetchError(
            f"cannot fetch model {redact_uri(remote.uri)}: its client library is not installed "
            f"({error.name}); install inferstack[worker] (the runtime image has it)"
        ) from None


def _import_backend(remote: RemoteModel) -> Download:
    if remote.scheme == "s3":
        from inferstack.runtime.model_source.s3 import download_s3

        return download_s3
    if remote.scheme == "gs":
        from inferstack.runtime.model_source.gcs import download_gcs

        return download_gcs
    from inferstack.runtime.model_source.web import download_web

    return download_web
