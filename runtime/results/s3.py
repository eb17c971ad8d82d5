"""Results in S3: `s3://BUCKET/PREFIX/<message id>.json`, written with `If-None-Match: *`.

S3 PUTs are atomic (an object appears whole or not at all); the conditional write makes them
write-once, so a redelivered message cannot replace a result (S3 answers 412, reported as
"already there"). Endpoint and credentials come from the standard AWS chain
(`AWS_ENDPOINT_URL_S3` for an S3-compatible server).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import boto3
from botocore.exceptions import ClientError
from typing_extensions import override

from inferstack.runtime.redaction import redact_uri
from inferstack.runtime.results import ResultStore, ResultStoreConfigError, object_name


class S3Store(ResultStore):
    """One object per message under a bucket prefix."""

    def __init__(self, client: Any, *, uri: str, bucket: str, prefix: str) -> None:
        self.uri = redact_uri(uri)
        self.bucket = bucket
        self.prefix = prefix
        self._client = client

    @classmethod
    def from_uri(cls, uri: str) -> S3Store:
        """`s3://BUCKET[/PREFIX]`."""
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        if not bucket:
            raise ResultStoreConfigError(
                f"results URI {redact_uri(uri)!r} names no bucket: s3://BUCKET/PREFIX"
            )
        return cls(boto3.client("s3"), uri=uri, bucket=bucket, prefix=prefix.strip("/"))

    def key(self, message_id: str) -> str:
        """The object key of `message_id`'s result."""
        return object_name(self.prefix, message_id)

    @override
    def put_many(self, results: Mapping[str, bytes]) -> dict[str, bool]:
        written: dict[str, bool] = {}
        for message_id, document in results.items():
            try:
                self._client.put_object(
                    Bucket=self.bucket,
                    Key=self.key(message_id),
                    Body=document,
                    ContentType="application/json",
                    IfNoneMatch="*",
                )
                written[message_id] = True
            except ClientError as error:
                if _status(error) != 412:
                    raise
                written[message_id] = False
        return written

    @override
    def existing(self, message_ids: Iterable[str]) -> set[str]:
        found: set[str] = set()
        for message_id in message_ids:
            try:
                self._client.head_object(Bucket=self.bucket, Key=self.key(message_id))
            except ClientError as error:
                if _status(error) != 404:
                    raise
            else:
                found.add(message_id)
        return found

    @override
    def get(self, message_id: str) -> bytes | None:
        try:
            reply = self._client.get_object(Bucket=self.bucket, Key=self.key(message_id))
        except ClientError as error:
            if _status(error) != 404:
                raise
            return None
        body: bytes = reply["Body"].read()
        return body


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
