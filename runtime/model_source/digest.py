"""The sha256 of a file, read in chunks so a multi-GB model never sits in memory at once."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 4 * 1024 * 1024


def file_sha256(path: Path) -> str:
    """The hex sha256 of the file at `path`, as `sha256sum` prints it."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
