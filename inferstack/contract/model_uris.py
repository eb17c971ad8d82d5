"""Model URIs: where a pod's model comes from, with the one parser the spec, the components and
the runtime's fetch step all use.

A pod cannot see the machine the stack was written on, so a model reaches it one of two ways:

- **fetched at pod start** from object storage by the runtime image itself (`inferstack serve`
  and `inferstack work` fetch before they load), with the pool's own identity:
  `s3://BUCKET/KEY`, `gs://BUCKET/OBJECT`, `hf://ORG/REPO@REVISION/PATH` (REVISION a 40-hex
  commit: a branch moves) and `https://HOST/PATH` (only with a sha256 digest: a URL can change
  under the same name);
- **baked into the image** (`scripts/image.sh build --model PATH`, `make image MODEL=PATH`),
  under `BAKED_MODEL_DIR`, named `file:///opt/inferstack/model/<file>`.

`builtin://mlp` and a `module:Class` handler (installed in the image) need neither. Any other
path is a path on the machine that wrote the stack, which no pod has: `local_path_problem` says
so with both fixes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

RemoteScheme = Literal["s3", "gs", "hf", "https"]
REMOTE_SCHEMES: Final[tuple[RemoteScheme, ...]] = ("s3", "gs", "hf", "https")
"""Schemes the runtime fetches at pod start."""
BAKED_MODEL_DIR: Final = "/opt/inferstack/model"
"""Where `scripts/image.sh build --model PATH` puts the model inside the image."""
MODEL_CACHE_MOUNT: Final = "/var/cache/inferstack/models"
"""Where the components mount the model cache volume in a pod (INFERSTACK_MODEL_CACHE)."""
SHA256_FORM: Final = "64 lowercase hex digits (sha256sum FILE)"
_SHA256: Final = re.compile(r"^[0-9a-f]{64}$")
_HF_REVISION: Final = re.compile(r"^[0-9a-f]{40}$")
_HF_REPO: Final = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_BAKE_FIX: Final = (
    "bake it into the runtime image (scripts/image.sh build --model PATH, or make image "
    f"MODEL=PATH, then model.uri: file://{BAKED_MODEL_DIR}/<file name>) or upload it and name it "
    "s3://BUCKET/KEY, gs://BUCKET/OBJECT, hf://ORG/REPO@COMMIT/PATH or https://... with "
    "model.sha256"
)


class ModelUriError(ValueError):
    """A model URI that cannot be fetched as written; the message says the form and the fix."""


@dataclass(frozen=True)
class RemoteModel:
    """A model the runtime fetches: its scheme and where it lives there."""

    scheme: RemoteScheme
    uri: str
    """The URI as written."""
    container: str
    """The bucket (s3, gs), the repository id (hf) or the host (https)."""
    path: str
    """The object key (s3), object name (gs), file in the repository (hf) or URL path (https)."""
    revision: str | None = None
    """The commit (hf only)."""

    @property
    def file_name(self) -> str:
        """The last path segment: the loader picks TorchScript or torch.export by its suffix."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]


def is_sha256(value: str) -> bool:
    """Whether `value` is a sha256 digest as `sha256sum` prints it."""
    return bool(_SHA256.match(value))


def parse_remote(uri: str) -> RemoteModel | None:
    """The remote model `uri` names, None when it is not a fetched scheme.

    Raises ModelUriError when the scheme is a fetched one but the rest is not its form.
    """
    scheme, separator, rest = uri.partition("://")
    if not separator or scheme not in REMOTE_SCHEMES:
        return None
    if scheme == "hf":
        return _parse_hf(uri, rest)
    if scheme == "https":
        parts = urlsplit(uri)
        if not parts.hostname or parts.path in ("", "/"):
            raise ModelUriError(f"model URI {uri!r} names no file; use https://HOST/PATH/FILE")
        return RemoteModel("https", uri, parts.netloc, parts.path.lstrip("/"))
    bucket, _, key = rest.partition("/")
    form = "s3://BUCKET/KEY" if scheme == "s3" else "gs://BUCKET/OBJECT"
    if not bucket or not key or key.endswith("/"):
        raise ModelUriError(f"model URI {uri!r} names no object; use {form} (one file)")
    return RemoteModel("s3" if scheme == "s3" else "gs", uri, bucket, key)


def _parse_hf(uri: str, rest: str) -> RemoteModel:
    form = "hf://ORG/REPO@COMMIT/PATH (COMMIT: the 40-hex commit id on the model page)"
    repo_and_revision, _, path = rest.partition("/")
    # The repository id itself has one slash: ORG/REPO@REV/PATH -> ("ORG", "REPO@REV/PATH").
    name, _, path = path.partition("/")
    repo_and_revision = f"{repo_and_revision}/{name}"
    repo, at, revision = repo_and_revision.partition("@")
    if not _HF_REPO.match(repo) or not path:
        raise ModelUriError(f"model URI {uri!r} is not {form}")
    if not at or not _HF_REVISION.match(revision):
        found = f"revision {revision!r}" if at else "no revision"
        raise ModelUriError(
            f"model URI {uri!r} has {found}: a branch or tag can move, so the pods could serve a "
            f"model nobody profiled; pin a commit: {form}"
        )
    return RemoteModel("hf", uri, repo, path, revision)


def fetch_problem(uri: str, sha256: str | None) -> str | None:
    """Why the runtime could not fetch `uri` as declared (None: it can, or it is not fetched)."""
    if sha256 is not None and not is_sha256(sha256):
        return f"model.sha256 {sha256!r} is not a sha256 digest; write {SHA256_FORM}"
    try:
        remote = parse_remote(uri)
    except ModelUriError as error:
        return str(error)
    if remote is not None and remote.scheme == "https" and sha256 is None:
        return (
            f"model URI {uri!r} is an https URL without model.sha256: what a URL serves can "
            f"change; add model.sha256 ({SHA256_FORM})"
        )
    return None


def local_path_problem(uri: str) -> str | None:
    """Why `uri` names a file no pod has (None: the pods can reach it)."""
    scheme, separator, rest = uri.partition("://")
    if separator and scheme != "file":
        return None  # builtin://, a fetched scheme, or one the loader refuses with its own fix.
    if not separator and re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", uri):
        return None  # module:Class, a handler installed in the image.
    path = rest if separator else uri
    if path.startswith(BAKED_MODEL_DIR + "/"):
        return None
    where = "a path on the machine that wrote the stack, which no pod has"
    return f"model URI {uri!r} is {where}; {_BAKE_FIX}"


def baked_model_uri(file_name: str) -> str:
    """The URI of a model baked into the image by `scripts/image.sh build --model PATH`."""
    return f"file://{BAKED_MODEL_DIR}/{file_name}"
