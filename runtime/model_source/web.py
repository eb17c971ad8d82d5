"""hf:// and https:// models over plain HTTPS (the standard library: no extra client).

hf://ORG/REPO@COMMIT/PATH is the Hugging Face Hub's resolve URL,
`{HF_ENDPOINT}/ORG/REPO/resolve/COMMIT/PATH` (HF_ENDPOINT defaults to https://huggingface.co,
as in huggingface_hub), with `Authorization: Bearer $HF_TOKEN` when HF_TOKEN is set (gated or
private repositories). The Hub answers with a redirect to its CDN, which urllib follows.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Final
from urllib.parse import quote

from inferstack.contract.model_uris import RemoteModel
from inferstack.runtime.model_source.errors import FinalFailure, TransientFailure

HF_DEFAULT_ENDPOINT: Final = "https://huggingface.co"
TIMEOUT_S: Final = 60.0
"""Per socket operation (connect, each read), not for the whole file."""
_CHUNK: Final = 4 * 1024 * 1024


def resolve_url(remote: RemoteModel) -> str:
    """The URL the file is read from."""
    if remote.scheme != "hf":
        return remote.uri
    endpoint = os.environ.get("HF_ENDPOINT", HF_DEFAULT_ENDPOINT).rstrip("/")
    return f"{endpoint}/{remote.container}/resolve/{remote.revision}/{quote(remote.path)}"


def download_web(remote: RemoteModel, destination: Path) -> None:
    """Write the file behind an hf:// or https:// URI to `destination`."""
    request = urllib.request.Request(resolve_url(remote))
    token = os.environ.get("HF_TOKEN")
    if remote.scheme == "hf" and token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with (
            urllib.request.urlopen(request, timeout=TIMEOUT_S) as response,
            destination.open("wb") as output,
        ):
            shutil.copyfileobj(response, output, _CHUNK)
    except urllib.error.HTTPError as error:
        raise _http_failure(remote, error.code, str(error.reason)) from None
    except (urllib.error.URLError, OSError) as error:
        raise TransientFailure(f"cannot reach {remote.container} ({error})") from None


def _http_failure(remote: RemoteModel, status: int, reason: str) -> Exception:
    cause = f"HTTP {status} {reason}"
    if status >= 500 or status in (408, 429):
        return TransientFailure(cause)
    if remote.scheme == "hf" and status in (401, 403):
        return FinalFailure(
            cause,
            "a gated or private repository needs HF_TOKEN (a read token) in the pod's "
            "environment, from a Secret",
        )
    if remote.scheme == "hf" and status == 404:
        return FinalFailure(cause, "check the repository, the commit and the file's path in it")
    return FinalFailure(cause)
