"""Results as files: `DIR/<message id>.json`, each written atomically, first write wins.

A result is written to a temporary file in the same directory, fsynced, then hard-linked to its
final name: `link` fails when the name exists, which makes the write both atomic (the name
appears with the whole content or not at all) and write-once (a redelivered message cannot
replace a result). The directory is fsynced once per batch so that the new names survive a
power loss before the worker acks.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from inferstack.runtime.results import ResultStore, ResultStoreConfigError, result_key

SUFFIX = ".json"


class DirectoryStore(ResultStore):
    """One JSON file per message in a local (or mounted) directory."""

    def __init__(self, directory: Path, *, uri: str | None = None) -> None:
        self.directory = directory
        self.uri = uri or directory.as_uri()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ResultStoreConfigError(
                f"results directory {directory} cannot be created ({error.strerror}); "
                "point --results at a writable directory"
            ) from None

    @classmethod
    def from_uri(cls, uri: str) -> DirectoryStore:
        """`file:///absolute/dir`."""
        path = uri.removeprefix("file://")
        if not path.startswith("/"):
            raise ResultStoreConfigError(
                f"results URI {uri!r} must name an absolute directory: file:///path/to/dir"
            )
        return cls(Path(path), uri=uri)

    def path(self, message_id: str) -> Path:
        """Where the result of `message_id` lives."""
        return self.directory / f"{result_key(message_id)}{SUFFIX}"

    def put_many(self, results: Mapping[str, bytes]) -> dict[str, bool]:
        written: dict[str, bool] = {}
        for message_id, document in results.items():
            written[message_id] = self._put(message_id, document)
        if results:
            _fsync_directory(self.directory)
        return written

    def _put(self, message_id: str, document: bytes) -> bool:
        final = self.path(message_id)
        descriptor, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=SUFFIX, dir=self.directory)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(document)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, final)
            except FileExistsError:
                return False
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)

    def existing(self, message_ids: Iterable[str]) -> set[str]:
        return {message_id for message_id in message_ids if self.path(message_id).exists()}

    def get(self, message_id: str) -> bytes | None:
        try:
            return self.path(message_id).read_bytes()
        except FileNotFoundError:
            return None


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
