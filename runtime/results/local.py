"""Results as files: `DIR/<message id>.json`, each written atomically, first write wins.

A result is written to a temporary file in the same directory, fsynced, then hard-linked to its
final name: `link` fails when the name exists, which makes the write both atomic (the name
appears with the whole content or not at all) and write-once (a redelivered message cannot
replace a result). Where the filesystem has O_TMPFILE the temporary has no name at all, so a
worker killed mid-write leaves no debris; elsewhere it is a `.tmp-*` file, removed after use.
The directory is fsynced once per batch so that the new names survive a power loss before the
worker acks.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from typing_extensions import override

from inferstack.runtime.redaction import redact_uri
from inferstack.runtime.results import (
    RESULT_SUFFIX,
    ResultStore,
    ResultStoreConfigError,
    result_key,
)

# What O_TMPFILE and linkat through /proc fail with where the filesystem, kernel or sandbox
# does not allow them.
_NO_TMPFILE = {
    errno.EOPNOTSUPP,
    errno.EISDIR,
    errno.EINVAL,
    errno.ENOENT,
    errno.EXDEV,
    errno.EPERM,
    errno.EACCES,
}


class DirectoryStore(ResultStore):
    """One JSON file per message in a local (or mounted) directory."""

    def __init__(self, directory: Path, *, uri: str | None = None) -> None:
        self.directory = directory
        self.uri = redact_uri(uri or directory.as_uri())
        self._anonymous = hasattr(os, "O_TMPFILE") and Path("/proc/self/fd").is_dir()
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
                f"results URI {redact_uri(uri)!r} must name an absolute directory: "
                "file:///path/to/dir"
            )
        return cls(Path(path), uri=uri)

    def path(self, message_id: str) -> Path:
        """Where the result of `message_id` lives."""
        return self.directory / f"{result_key(message_id)}{RESULT_SUFFIX}"

    @override
    def put_many(self, results: Mapping[str, bytes]) -> dict[str, bool]:
        written: dict[str, bool] = {}
        for message_id, document in results.items():
            written[message_id] = self._put(self.path(message_id), document)
        if results:
            _fsync_directory(self.directory)
        return written

    def _put(self, final: Path, document: bytes) -> bool:
        if self._anonymous:
            try:
                return self._put_anonymous(final, document)
            except OSError as error:
                if error.errno not in _NO_TMPFILE:
                    raise
                self._anonymous = False  # No O_TMPFILE here: use named temporaries.
        return self._put_named(final, document)

    def _put_anonymous(self, final: Path, document: bytes) -> bool:
        descriptor = os.open(self.directory, os.O_TMPFILE | os.O_WRONLY, 0o644)
        try:
            _write_all(descriptor, document)
            directory = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                # linkat(AT_SYMLINK_FOLLOW) through /proc gives the unnamed inode its name.
                # A dir fd makes CPython call linkat; with none it calls link(), which would
                # link the /proc symlink itself.
                os.link(
                    f"/proc/self/fd/{descriptor}",
                    final.name,
                    dst_dir_fd=directory,
                    follow_symlinks=True,
                )
            except FileExistsError:
                return False
            finally:
                os.close(directory)
            return True
        finally:
            os.close(descriptor)

    def _put_named(self, final: Path, document: bytes) -> bool:
        descriptor, temporary = tempfile.mkstemp(
            prefix=".tmp-", suffix=RESULT_SUFFIX, dir=self.directory
        )
        try:
            try:
                _write_all(descriptor, document)
            finally:
                os.close(descriptor)
            try:
                os.link(temporary, final)
            except FileExistsError:
                return False
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)

    @override
    def existing(self, message_ids: Iterable[str]) -> set[str]:
        return {message_id for message_id in message_ids if self.path(message_id).exists()}

    @override
    def get(self, message_id: str) -> bytes | None:
        try:
            return self.path(message_id).read_bytes()
        except FileNotFoundError:
            return None


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]
    os.fsync(descriptor)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
