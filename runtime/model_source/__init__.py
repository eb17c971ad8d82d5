"""The model fetch step: a remote model URI becomes a verified local file before the model loads.

`inferstack serve`, `inferstack work` and `inferstack profile` call `fetch_model` first, so the
runtime image is its own init step: a pod whose `INFERSTACK_MODEL` is `s3://`, `gs://`, `hf://` or
`https://` downloads the file into `INFERSTACK_MODEL_CACHE` (the components mount an emptyDir, or
a node-local or PVC cache, there), with the pod's own identity, then loads it from there. The URI
forms and their rules are the contract's (`inferstack.contract.model_uris`).

Guarantees:
- the file appears in the cache whole or not at all (written beside it, renamed into place);
- with a sha256 digest (`INFERSTACK_MODEL_SHA256`; required for https://), a file whose digest
  differs is refused, naming the URI and both digests, and never loaded; a cached file with the
  right digest is used without a download (a node-local or PVC cache survives pod restarts);
- transient failures (connection errors, throttling, 5xx) are retried with exponential backoff;
  a refusal (403, 404, no credentials) is not, since it will not change by waiting;
- every failure is one `ModelFetchError` naming the URI (credentials redacted) and the cause,
  with the fix where there is one.

Each scheme's client is imported only when its scheme is used (boto3 for s3://,
google-cloud-storage for gs://, the standard library for hf:// and https://).
"""

from __future__ import annotations

from inferstack.runtime.model_source.errors import ModelFetchError
from inferstack.runtime.model_source.fetch import (
    DEFAULT_RETRY,
    RetryPolicy,
    default_cache_dir,
    fetch_model,
)

__all__ = ["DEFAULT_RETRY", "ModelFetchError", "RetryPolicy", "default_cache_dir", "fetch_model"]
