"""Results in Google Cloud Storage: `gs://BUCKET/PREFIX/<message id>.json`, write-once.

Uploads are atomic (an object appears whole or not at all); `ifGenerationMatch=0` makes them
write-once, so a redelivered message cannot replace a result (GCS answers 412, reported as
"already there"). Credentials come from the standard Google chain (Workload Identity on GKE);
`STORAGE_EMULATOR_HOST` points the client at an emulator.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from typing_extensions import override

from inferstack.runtime.redaction import redact_uri
from inferstack.runtime.results import ResultStore, ResultStoreConfigError, object_name

with warnings.catch_warnings():
    # google-api-core warns about the interpreter's end-of-life date at import; not actionable.
    warnings.simplefilter("ignore", FutureWarning)
    from google.api_core import exceptions as google_exceptions
    from google.cloud import storage


class GcsStore(ResultStore):
    """One object per message under a bucket prefix."""

    def __init__(self, client: Any, *, uri: str, bucket: str, prefix: str) -> None:
        self.uri = redact_uri(uri)
        self.prefix = prefix
        self._bucket = client.bucket(bucket)

    @classmethod
    def from_uri(cls, uri: str) -> GcsStore:
        """`gs://BUCKET[/PREFIX]`."""
        bucket, _, prefix = uri.removeprefix("gs://").partition("/")
        if not bucket:
            raise ResultStoreConfigError(
                f"results URI {redact_uri(uri)!r} names no bucket: gs://BUCKET/PREFIX"
            )
        return cls(storage.Client(), uri=uri, bucket=bucket, prefix=prefix.strip("/"))

    def key(self, message_id: str) -> str:
        """The object name of `message_id`'s result."""
        return object_name(self.prefix, message_id)

    @override
    def put_many(self, results: Mapping[str, bytes]) -> dict[str, bool]:
        written: dict[str, bool] = {}
        for message_id, document in results.items():
            blob = self._bucket.blob(self.key(message_id))
            try:
                blob.upload_from_string(
                    document, content_type="application/json", if_generation_match=0
                )
                written[message_id] = True
            except google_exceptions.PreconditionFailed:
                written[message_id] = False
        return written

    @override
    def existing(self, message_ids: Iterable[str]) -> set[str]:
        return {m for m in message_ids if self._bucket.blob(self.key(m)).exists()}

    @override
    def get(self, message_id: str) -> bytes | None:
        try:
            data: bytes = self._bucket.blob(self.key(message_id)).download_as_bytes()
        except google_exceptions.NotFound:
            return None
        return data
