"""Shared-memory segments: how message bytes cross between the grid and its worker processes.

A segment is an anonymous shared-memory file, written once by its sender and handed to
the receiver as a file descriptor over the worker's socket (``SCM_RIGHTS``, see
:func:`send` and :func:`receive`); the bytes themselves never go through the socket.

- **Nothing to leak.** On Linux a segment is a ``memfd_create`` file: it has no name,
  nothing appears in ``/dev/shm``, and the kernel frees it when the last descriptor and
  the last mapping are gone, whichever process dies and however. Elsewhere it is a
  temporary file that is unlinked the moment it is created. Descriptors still in a
  socket's queue are freed with the socket. (memfd is also not bound by the size of a
  container's ``/dev/shm``, 64 MiB by default in Docker.)
- **Written once.** The sender writes the whole segment with ``writev`` straight from the
  arrays' buffers (one copy, into the shared pages) before sending it and never writes it
  again; receivers map it read-only. A segment is therefore immutable from the moment it
  is received, which is what makes zero-copy decoding safe (see :func:`open_segment`).
"""

from __future__ import annotations

import mmap
import os
import socket
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

__all__ = [
    "Buffer",
    "SHARE_MIN_BYTES",
    "close_inherited_segments",
    "create_segment",
    "open_segment",
    "receive",
    "send",
]

Buffer = bytes | bytearray | memoryview

#: Segments at least this large are mapped and decoded in place; smaller ones are read
#: into a bytes object (cheaper than a mapping, and a mapping holds a file descriptor
#: while any array viewing it lives, before Python 3.13).
SHARE_MIN_BYTES = 1 << 20

_NAME = "fedlab-segment"
_IOV_MAX = 1024  # POSIX guarantees at least 16; Linux and macOS allow 1024 buffers per writev
_MAX_CHUNK = 1 << 30  # stay below the ~2 GiB that one read or write moves on Linux
# With trackfd=False (3.13+) a mapping does not keep a duplicate of the descriptor open.
_MAP_OPTIONS: dict[str, Any] = {"trackfd": False} if sys.version_info >= (3, 13) else {}


def create_segment(parts: Sequence[Buffer]) -> int:
    """Write ``parts`` one after the other into a new segment; return its descriptor.

    The caller owns the descriptor and closes it once it is sent.
    """
    fd = _anonymous_file()
    try:
        _write_all(fd, parts)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_segment(fd: int) -> memoryview:
    """Return a read-only view of the whole segment ``fd`` (the descriptor stays the caller's).

    A large segment is mapped: the view reads the shared pages in place and keeps the
    mapping alive for as long as it or any slice of it lives. A small one is read into a
    bytes object. Either way the view is of immutable bytes, so records decoded from it
    may keep slices of it instead of copies.
    """
    size = os.fstat(fd).st_size
    if size >= SHARE_MIN_BYTES:
        mapping = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ, **_MAP_OPTIONS)
        return memoryview(mapping)
    chunks = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(size - offset, _MAX_CHUNK), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return memoryview(chunks[0] if len(chunks) == 1 else b"".join(chunks))


def send(sock: socket.socket, op: bytes, fd: int | None = None) -> None:
    """Send a one-byte operation ``op``, with the segment ``fd`` attached if given."""
    if fd is None:
        sock.sendall(op)
    else:
        socket.send_fds(sock, [op], [fd])


def receive(sock: socket.socket) -> tuple[bytes, int | None]:
    """Receive one operation sent by :func:`send`: ``(op, fd or None)``; ``op`` is b"" at EOF.

    The caller owns the descriptor and must close it.
    """
    op, fds, flags, _ = socket.recv_fds(sock, 1, 1)
    if flags & getattr(socket, "MSG_CTRUNC", 0):  # more descriptors than expected: close them
        for extra in fds:
            os.close(extra)
        raise OSError("received more file descriptors than one per operation")
    if len(fds) > 1:  # cannot happen with our sender; never leak one if it did
        for extra in fds[1:]:
            os.close(extra)
    return op, (fds[0] if fds else None)


def close_inherited_segments() -> None:
    """Close the segment descriptors a forked process inherited from calls in flight (Linux)."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return
    for name in names:
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith(f"/memfd:{_NAME}"):
                os.close(int(name))
        except OSError:
            pass


def _anonymous_file() -> int:
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None:
        fd: int = memfd_create(_NAME, getattr(os, "MFD_CLOEXEC", 1))
        return fd
    folder = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    fd, path = tempfile.mkstemp(prefix=_NAME + "-", dir=folder)
    os.unlink(path)
    return fd


def _write_all(fd: int, parts: Sequence[Buffer]) -> None:
    views = [view for view in (memoryview(p).cast("B") for p in parts) if view.nbytes]
    first = 0  # views[first:] are still to write; views[first] may be a written-into tail
    while first < len(views):
        batch = views[first : first + _IOV_MAX]
        if batch[0].nbytes > _MAX_CHUNK:
            batch = [batch[0][:_MAX_CHUNK]]
        written = os.writev(fd, batch)
        while written:
            head = views[first]
            if written >= head.nbytes:
                written -= head.nbytes
                first += 1
            else:
                views[first] = head[written:]
                written = 0
