"""Where the SuperLink keeps objects (message contents, bundles): in memory or in files.

Objects are named by their sha256, so storing one twice stores it once. Files are used
with ``--state-dir``: an object is written to a temporary file, checked, flushed to disk
(fsync) and only then renamed into place, so a stored object is complete and durable
before anything that refers to it is committed. SQLite is not used for the bytes
themselves: its BLOBs stop at 1 GB, models do not.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from fedlab.deploy.transport.channel import CHUNK_SIZE
from fedlab.deploy.transport.transfer import check_digest
from fedlab.errors import TransferError

__all__ = ["DirectoryObjectStore", "MemoryObjectStore", "ObjectStore", "ObjectWriter"]


class ObjectWriter(ABC):
    """Receives one object chunk by chunk; :meth:`commit` checks it and makes it visible."""

    def __init__(self, digest: str, size: int) -> None:
        self.digest = digest
        self.size = size
        self.received = 0
        self._hash = hashlib.sha256()

    def write(self, offset: int, data: bytes | memoryview) -> None:
        """Append the chunk starting at ``offset``."""
        length = memoryview(data).nbytes
        if offset != self.received or self.received + length > self.size:
            raise TransferError(
                f"Object {self.digest[:12]}: chunk at byte {offset} of {length} bytes does not "
                f"follow the {self.received} bytes received of {self.size} announced."
            )
        self._hash.update(data)
        self._write(data)
        self.received += length

    def _check(self) -> None:
        if self.received != self.size or self._hash.hexdigest() != self.digest:
            raise TransferError(
                f"Object {self.digest[:12]} arrived damaged or incomplete ({self.received} of "
                f"{self.size} bytes, sha256 {self._hash.hexdigest()[:12]}); it was not stored."
            )

    @abstractmethod
    def _write(self, data: bytes | memoryview) -> None: ...

    @abstractmethod
    def commit(self) -> None:
        """Check size and sha256, then store the object (raises TransferError if damaged)."""

    @abstractmethod
    def abort(self) -> None:
        """Forget what was received."""


class ObjectStore(ABC):
    """Content-addressed storage of objects, with the time each was last used."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._touched: dict[str, float] = {}

    def missing(self, digests: Iterable[str]) -> list[str]:
        """Return those of ``digests`` that are not stored, in order, each once."""
        seen: set[str] = set()
        out = []
        for digest in digests:
            if digest not in seen and not self.has(check_digest(digest)):
                out.append(digest)
            seen.add(digest)
        return out

    def touch(self, digest: str) -> None:
        """Mark ``digest`` as used now, so garbage collection leaves it alone a while."""
        with self._lock:
            if digest in self._touched:
                self._touched[digest] = time.time()

    def unused_since(self, cutoff: float) -> list[str]:
        """Return the digests last stored or touched before ``cutoff`` (Unix time)."""
        with self._lock:
            return [d for d, t in self._touched.items() if t < cutoff]

    def put(self, data: bytes) -> str:
        """Store ``data`` at once and return its digest (for small objects and tests)."""
        digest = hashlib.sha256(data).hexdigest()
        if not self.has(digest):
            writer = self.writer(digest, len(data))
            writer.write(0, data)
            writer.commit()
        return digest

    def read_small(self, digest: str) -> bytes | None:
        """Return a stored object whole (for objects small enough to inline), marking it used.

        None if it is not stored (or was collected meanwhile).
        """
        try:
            data = b"".join(self.read(digest, 0, CHUNK_SIZE))
        except (KeyError, FileNotFoundError):
            return None
        self.touch(digest)
        return data

    def digests(self) -> list[str]:
        """Return every stored digest."""
        with self._lock:
            return list(self._touched)

    def _stored(self, digest: str) -> None:
        with self._lock:
            self._touched[digest] = time.time()

    def _forget(self, digest: str) -> None:
        with self._lock:
            self._touched.pop(digest, None)

    @abstractmethod
    def has(self, digest: str) -> bool:
        """True if ``digest`` is stored."""

    @abstractmethod
    def size(self, digest: str) -> int | None:
        """The size of ``digest`` in bytes, or None if it is not stored."""

    @abstractmethod
    def writer(self, digest: str, size: int) -> ObjectWriter:
        """Start receiving object ``digest`` of ``size`` bytes."""

    @abstractmethod
    def read(self, digest: str, offset: int, chunk_size: int) -> Iterator[bytes | memoryview]:
        """Yield the object's bytes from ``offset`` in pieces of at most ``chunk_size``."""

    @abstractmethod
    def delete(self, digest: str) -> None:
        """Remove ``digest`` (a no-op if it is not stored)."""


class MemoryObjectStore(ObjectStore):
    """Objects as ``bytes`` in a dict: for ``--state memory`` and tests."""

    def __init__(self) -> None:
        super().__init__()
        self._data: dict[str, bytes] = {}

    def has(self, digest: str) -> bool:
        return digest in self._data

    def size(self, digest: str) -> int | None:
        data = self._data.get(digest)
        return None if data is None else len(data)

    def writer(self, digest: str, size: int) -> ObjectWriter:
        return _MemoryWriter(self, digest, size)

    def read(self, digest: str, offset: int, chunk_size: int) -> Iterator[memoryview]:
        view = memoryview(self._data[digest])
        for start in range(offset, len(view), chunk_size):
            yield view[start : start + chunk_size]  # sent without an extra copy

    def delete(self, digest: str) -> None:
        self._data.pop(digest, None)
        self._forget(digest)


class _MemoryWriter(ObjectWriter):
    def __init__(self, store: MemoryObjectStore, digest: str, size: int) -> None:
        super().__init__(digest, size)
        self._store = store
        # Grows with what arrives (not preallocated: the sender announced the size, and may
        # lie); getvalue() then hands the buffer over without a copy.
        self._buffer = io.BytesIO()

    def _write(self, data: bytes | memoryview) -> None:
        self._buffer.write(data)

    def commit(self) -> None:
        self._check()
        self._store._data[self.digest] = self._buffer.getvalue()
        self._buffer = io.BytesIO()
        self._store._stored(self.digest)

    def abort(self) -> None:
        self._buffer = io.BytesIO()


class DirectoryObjectStore(ObjectStore):
    """Objects as files ``ROOT/ab/abcdef...``; survives restarts."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__()
        self.root = Path(root)
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        for leftover in self._tmp.iterdir():  # uploads cut short by a crash
            leftover.unlink(missing_ok=True)
        for path in self.root.glob("??/*"):
            self._touched[path.name] = path.stat().st_mtime

    def path(self, digest: str) -> Path:
        """Where object ``digest`` lives."""
        check_digest(digest)
        return self.root / digest[:2] / digest

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int | None:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def writer(self, digest: str, size: int) -> ObjectWriter:
        return _FileWriter(self, digest, size)

    def read(self, digest: str, offset: int, chunk_size: int) -> Iterator[bytes]:
        # An open file stays readable if garbage collection unlinks it meanwhile.
        with open(self.path(digest), "rb") as file:
            file.seek(offset)
            while chunk := file.read(chunk_size):
                yield chunk

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)
        self._forget(digest)


class _FileWriter(ObjectWriter):
    def __init__(self, store: DirectoryObjectStore, digest: str, size: int) -> None:
        super().__init__(digest, size)
        self._store = store
        fd, name = tempfile.mkstemp(dir=store._tmp, prefix=digest[:12])
        self._file: Any = os.fdopen(fd, "wb")
        self._name = name

    def _write(self, data: bytes | memoryview) -> None:
        self._file.write(data)

    def commit(self) -> None:
        try:
            self._check()
            self._file.flush()
            os.fsync(self._file.fileno())
        except BaseException:
            self.abort()
            raise
        self._file.close()
        target = self._store.path(self.digest)
        target.parent.mkdir(exist_ok=True)
        os.replace(self._name, target)
        _fsync_dir(target.parent)
        self._store._stored(self.digest)

    def abort(self) -> None:
        self._file.close()
        Path(self._name).unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the directory entry is on disk too.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
