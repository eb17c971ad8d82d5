"""s3:// models through boto3: the standard credential chain (IRSA or Pod Identity in a pod,
`AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` for an S3-compatible server) and boto3's managed
transfer (parallel ranged GETs for a large object)."""

from __future__ import annotations

from pathlib import Path

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)

from inferstack.contract.model_uris import RemoteModel
from inferstack.runtime.model_source.errors import FinalFailure, TransientFailure

# S3 error codes that a later attempt can succeed past (AWS's "retryable" list, less the
# ones boto3 already retried within the attempt).
_TRANSIENT_CODES = frozenset(
    {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling"}
)
_REASONS = {403: "Forbidden", 404: "Not Found"}


def download_s3(remote: RemoteModel, destination: Path) -> None:
    """Write `s3://BUCKET/KEY` to `destination`."""
    try:
        client = boto3.client("s3")
        client.download_file(remote.container, remote.path, str(destination))
    except (NoCredentialsError, PartialCredentialsError) as error:
        raise FinalFailure(
            f"no AWS credentials ({error})",
            "run the pod with the pool's service account (its IRSA role may read the object)",
        ) from None
    except ClientError as error:
        raise _client_failure(remote, error) from None
    except ConnectionError as error:
        raise TransientFailure(f"cannot reach S3 ({error})") from None
    except BotoCoreError as error:
        raise TransientFailure(f"{type(error).__name__}: {error}") from None


def _client_failure(remote: RemoteModel, error: ClientError) -> Exception:
    response = error.response
    code = str(response.get("Error", {}).get("Code", "Unknown"))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    # A HEAD (boto3's first request) has no body, so its code is just the status again.
    named = code if code != str(status) else _REASONS.get(status, "")
    cause = f"S3 answered {status or '?'} {named}".rstrip()
    if code in _TRANSIENT_CODES or status >= 500 or status == 429:
        return TransientFailure(cause)
    if status == 403 or code in ("AccessDenied", "403"):
        return FinalFailure(
            cause,
            f"grant the pool's role s3:GetObject on arn:aws:s3:::{remote.container}/{remote.path} "
            "(the AWS component does for model.uri); without s3:ListBucket S3 also answers 403 "
            "for a key that does not exist, so check the key too",
        )
    if status == 404 or code in ("NoSuchKey", "NoSuchBucket", "404"):
        return FinalFailure(cause, "check the bucket and key (aws s3 ls the URI)")
    return FinalFailure(cause)
