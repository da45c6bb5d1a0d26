"""Where object bytes live: a small backend interface and the ``filesystem`` backend.

A backend stores opaque *blobs* under names it generates itself (``Backend.open_writer`` picks the name), so no user
input ever becomes part of a path or a bucket key. The database rows in objectstore/models.py map Gofer's keys to
blob names. A writer takes chunks and makes the blob visible only on ``commit()``: a failed or abandoned upload never
leaves a partial blob under a real name.

Adding an S3-compatible backend (MinIO, Ceph, R2, AWS): write ``S3Backend(Backend)`` in its own module with
- ``open_writer``: start a multipart upload to ``<prefix>/<name>``, buffer chunks up to the part size (at least
  5 MiB, say 16 MiB, which is also the memory bound per upload), upload each part; ``commit`` completes the multipart
  upload (S3 makes the object visible atomically at that moment), ``abort`` aborts it (and a bucket lifecycle rule
  "abort incomplete multipart uploads after 1 day" cleans up after crashes);
- ``open_reader``: ``GetObject`` (``HeadObject`` for the size) and iterate the streaming body in chunks;
- ``delete``: ``DeleteObject`` (idempotent on S3 already); ``exists``: ``HeadObject``.
Then register it in ``BACKENDS`` below and select it with ``GOFER_OBJECT_BACKEND=s3``; its own settings (endpoint,
bucket, prefix, credentials via the ``*_FILE`` convention) go in the settings' "Object store" section. Nothing else
changes: services only speak this interface.
"""

from __future__ import annotations

import abc
import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Self

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from kernel import files

CHUNK_SIZE = 1024 * 1024
TEMP_PREFIX = ".partial-"


class BlobNotFound(Exception):
    """The backend has no blob of that name."""


class BlobWriter(abc.ABC):
    """Receives a blob's bytes in chunks. Nothing is visible under ``name`` until ``commit()`` returns.

    Use as a context manager: leaving the block without ``commit()`` (an exception, a size limit) aborts.
    """

    name: str

    @abc.abstractmethod
    def write(self, chunk: bytes) -> None: ...

    @abc.abstractmethod
    def commit(self) -> None:
        """Make the blob durable and visible under ``name``, all at once."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Throw the bytes away. Safe to call more than once, and after a failed commit."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not getattr(self, "committed", False):
            self.abort()


class BlobReader(abc.ABC):
    """An open blob: its size and its bytes as chunks. Opening pins the bytes (a later delete does not cut it)."""

    size: int

    @abc.abstractmethod
    def chunks(self, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The bytes, in order, at most ``chunk_size`` at a time; closes the reader at the end."""

    @abc.abstractmethod
    def close(self) -> None: ...


class Backend(abc.ABC):
    """Blob storage. Implementations must be safe to use from several threads and processes at once."""

    @abc.abstractmethod
    def open_writer(self) -> BlobWriter:
        """A writer for a new blob under a fresh, unique name (``writer.name``)."""

    @abc.abstractmethod
    def open_reader(self, name: str) -> BlobReader:
        """Open a blob for reading; raises BlobNotFound."""

    @abc.abstractmethod
    def delete(self, name: str) -> None:
        """Delete a blob. Deleting a blob that does not exist is not an error (deletes are retried after crashes)."""

    @abc.abstractmethod
    def exists(self, name: str) -> bool: ...


# --- filesystem -----------------------------------------------------------------------------------------------------


class FilesystemBackend(Backend):
    """Blobs as files under ``root``: ``<root>/blobs/<2 hex>/<32 hex>``, the name a random UUID.

    Writers write ``<same directory>/.partial-<uuid>``, fsync it, ``os.replace`` it onto the final name (atomic on
    POSIX, because both are in one directory) and fsync the directory, so after a crash a name either has the whole
    blob or does not exist. Leftover ``.partial-*`` files are from interrupted uploads and can be deleted.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path_of(self, name: str) -> Path:
        """The file of a blob. Refuses any name this backend could not have generated."""
        try:
            parsed = uuid.UUID(hex=name)
        except (ValueError, TypeError):
            raise BlobNotFound(f"not a blob name of this backend: {name!r:.80}") from None
        if parsed.hex != name:
            raise BlobNotFound(f"not a blob name of this backend: {name!r:.80}")
        return self.root / "blobs" / name[:2] / name

    def open_writer(self) -> FilesystemWriter:
        name = uuid.uuid4().hex
        return FilesystemWriter(name, self.path_of(name))

    def open_reader(self, name: str) -> FilesystemReader:
        try:
            handle = open(self.path_of(name), "rb")  # noqa: SIM115 - the reader owns and closes it
        except FileNotFoundError:
            raise BlobNotFound(name) from None
        return FilesystemReader(handle)

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError, BlobNotFound):
            self.path_of(name).unlink()

    def exists(self, name: str) -> bool:
        try:
            return self.path_of(name).is_file()
        except BlobNotFound:
            return False


class FilesystemWriter(BlobWriter):
    def __init__(self, name: str, final_path: Path) -> None:
        self.name = name
        self.final_path = final_path
        files.private_directories(final_path.parent)  # 0700 up to the store's root; the blob itself is 0600
        self.temp_path = final_path.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
        # O_EXCL: the temp name is fresh; never follow or reuse something already there.
        fd = os.open(self.temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(fd, "wb")
        self.committed = False

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)

    def commit(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.temp_path, self.final_path)
        self.committed = True
        # The rename itself is only durable once the directory entry is on disk.
        dir_fd = os.open(self.final_path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        if not self.committed:
            self.temp_path.unlink(missing_ok=True)


class FilesystemReader(BlobReader):
    def __init__(self, handle) -> None:  # noqa: ANN001 - a binary file object
        self._handle = handle
        self.size = os.fstat(handle.fileno()).st_size

    def chunks(self, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        try:
            while chunk := self._handle.read(chunk_size):
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        self._handle.close()


# --- selection ------------------------------------------------------------------------------------------------------

BACKENDS = {
    "filesystem": "objectstore.backends.filesystem_backend",
}


def filesystem_backend() -> FilesystemBackend:
    return FilesystemBackend(settings.GOFER_OBJECT_DIR)


def get_backend() -> Backend:
    """The backend ``GOFER_OBJECT_BACKEND`` names, built from the current settings (cheap; tests change them)."""
    name = settings.GOFER_OBJECT_BACKEND
    if name not in BACKENDS:
        raise ImproperlyConfigured(f"GOFER_OBJECT_BACKEND: unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    return import_string(BACKENDS[name])()
