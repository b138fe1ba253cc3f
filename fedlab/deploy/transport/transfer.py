"""Objects on the wire: content-addressed blobs streamed in checksummed chunks.

Message contents and app bundles travel as *objects*: a blob named by the sha256 of its
bytes. An upload first asks which digests the SuperLink lacks (so a model broadcast to N
nodes goes up once), then streams each missing blob in :data:`CHUNK_SIZE` pieces; a
download streams them back. Every chunk is far below the gRPC message limit, so an object
of any size travels, past 2 GB included, and the receiver checks the total size and the
sha256 of what it assembled before using it.

Examples
--------
>>> blob = b"x" * 10
>>> ref = object_ref(blob)
>>> chunks = list(iter_chunks(blob, ref, chunk_size=4))
>>> [len(c.data) for c in chunks], chunks[0].ref.size
([4, 4, 2], 10)
>>> assembler = Assembler(ref)
>>> for c in chunks:
...     assembler.write(c.offset, c.data)
>>> assembler.finish() == blob
True
"""

from __future__ import annotations

import hashlib
import io
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import grpc

from fedlab.deploy import proto as pb
from fedlab.deploy.transport.channel import CHUNK_SIZE, Backoff, is_retryable
from fedlab.deploy.transport.chunks import Chunk
from fedlab.errors import TransferError

__all__ = [
    "Assembler",
    "check_digest",
    "download",
    "iter_chunks",
    "object_ref",
    "push_objects",
]

_DIGEST = re.compile(r"[0-9a-f]{64}")
Buffer = bytes | bytearray | memoryview


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is a lowercase sha256 hex string; raise TransferError if not."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise TransferError(f"{digest!r} is not an object digest (64 lowercase hex characters).")
    return digest


def object_ref(data: Buffer) -> Any:
    """Return the ``ObjectRef`` (sha256 digest and size) of ``data``."""
    view = memoryview(data).cast("B")
    return pb.ObjectRef(digest=hashlib.sha256(view).hexdigest(), size=view.nbytes)


def iter_chunks(
    data: Buffer, ref: Any, *, node_id: int = 0, offset: int = 0, chunk_size: int = CHUNK_SIZE
) -> Iterator[Chunk]:
    """Yield the chunks covering ``data`` from ``offset``; the first carries ``ref``.

    Chunks are views into ``data`` (nothing is copied until the chunk is sent). An empty
    object is one empty chunk, so that the receiver still learns its ref.
    """
    view = memoryview(data).cast("B")
    position = offset
    yield Chunk(offset=position, data=view[position : position + chunk_size], ref=ref, node_id=node_id)
    position += chunk_size
    while position < view.nbytes:
        yield Chunk(offset=position, data=view[position : position + chunk_size], node_id=node_id)
        position += chunk_size


class Assembler:
    """Reassembles an object from in-order chunks and checks its size and sha256.

    :meth:`finish` hands the buffer over as ``bytes`` without copying (CPython's BytesIO
    gives up its buffer), so receiving a model costs its size in memory once, not twice.
    Hashing happens as chunks arrive. With ``preallocate`` the buffer is allocated at the
    announced size up front (faster); leave it off when the announcer is not trusted, so
    memory grows only with bytes that really arrive, and call :meth:`confirm` with the
    sender's own ref: once the sender vouches for the size, it is allocated.
    """

    def __init__(self, ref: Any, *, max_size: int | None = None, preallocate: bool = True) -> None:
        self.ref = ref
        self.digest = check_digest(ref.digest)
        self.size = int(ref.size)
        if max_size is not None and self.size > max_size:
            raise TransferError(
                f"Object {self.digest[:12]} is {self.size} bytes, above the limit of {max_size}; "
                "raise the receiver's maximum object size if this model is expected."
            )
        self._buffer = io.BytesIO()
        self._allocated = False
        if preallocate:
            self._allocate()
        self._hash = hashlib.sha256()
        self.received = 0

    def _allocate(self) -> None:
        if self.size and not self._allocated and not self._buffer.tell():
            self._buffer.seek(self.size - 1)
            self._buffer.write(b"\0")
            self._buffer.seek(0)
        self._allocated = True

    def confirm(self, ref: Any) -> None:
        """Check the sender's ref against the announced one, then allocate the buffer.

        The announced ref (from a message header) may lie about the size; the sender of
        the bytes (the SuperLink, which checked them when it stored them) knows it.

        Raises
        ------
        TransferError
            If the sender holds another object, or one of another size: nothing is allocated.
        """
        if ref.digest != self.digest or int(ref.size) != self.size:
            raise TransferError(
                f"Object {self.digest[:12]} was announced as {self.size} bytes, but the sender "
                f"holds {ref.digest[:12]} of {int(ref.size)} bytes; the message that announced "
                "it is broken or lying, and was not used."
            )
        self._allocate()

    def write(self, offset: int, data: Buffer) -> None:
        """Append the chunk that starts at ``offset`` (chunks must arrive in order)."""
        if offset != self.received:
            raise TransferError(
                f"Object {self.digest[:12]}: a chunk starts at byte {offset}, expected "
                f"{self.received}; the stream is out of order."
            )
        length = memoryview(data).nbytes
        if self.received + length > self.size:
            raise TransferError(
                f"Object {self.digest[:12]} was announced as {self.size} bytes but more arrived; "
                "the sender is broken or lying."
            )
        self._buffer.write(data)
        self._hash.update(data)
        self.received += length

    def finish(self) -> bytes:
        """Return the object once it is complete and its sha256 matches the ref.

        Raises
        ------
        TransferError
            If bytes are missing or the checksum does not match (the data is damaged).
        """
        if self.received != self.size:
            raise TransferError(
                f"Object {self.digest[:12]} stopped after {self.received} of {self.size} bytes."
            )
        if self._hash.hexdigest() != self.digest:
            raise TransferError(
                f"Object {self.digest[:12]} arrived damaged: its sha256 is "
                f"{self._hash.hexdigest()[:12]}...; it was not used. Retry the transfer."
            )
        data = self._buffer.getvalue()
        self._buffer = io.BytesIO()
        return data


def push_objects(stub: Any, blobs: Mapping[str, Buffer], *, node_id: int = 0, timeout: float | None = None) -> int:
    """Upload those of ``blobs`` (digest → bytes) that the SuperLink lacks; return bytes sent.

    ``stub`` is a Fleet, ServerAppIo or Control stub (all have FindMissingObjects/PushObject).
    """
    if not blobs:
        return 0
    missing = stub.FindMissingObjects(
        pb.FindMissingObjectsRequest(digests=list(blobs), node_id=node_id), timeout=timeout
    ).missing
    sent = 0
    for digest in missing:
        data = blobs[digest]
        ref = pb.ObjectRef(digest=digest, size=memoryview(data).nbytes)
        stub.PushObject(iter_chunks(data, ref, node_id=node_id), timeout=timeout)
        sent += ref.size
    return sent


def download(
    open_stream: Callable[[int], Iterable[Any]],
    ref: Any,
    *,
    max_size: int | None = None,
    attempts: int = 5,
) -> bytes:
    """Download object ``ref``; ``open_stream(offset)`` starts a PullObject/FetchBundle stream.

    The stream yields :class:`~fedlab.deploy.transport.chunks.Chunk` objects (what the gRPC layer
    decodes ``ObjectChunk`` messages into).

    A stream that breaks because the other side is briefly unreachable is resumed from the
    last byte received, up to ``attempts`` times.

    Raises
    ------
    TransferError
        If the object arrives damaged, is larger than ``max_size``, or the sender holds an
        object of another size than ``ref`` announced.
    grpc.RpcError
        If the other side refuses, or stays unreachable.
    """
    # The announced ref comes from a message header, which its author may have filled with
    # any size: memory is allocated only once the stream's first chunk (the sender's ref)
    # confirms it, and grows with the bytes that arrive if the sender gives no ref.
    assembler = Assembler(ref, max_size=max_size, preallocate=False)
    backoff = Backoff(maximum=2.0)
    failures = 0
    while True:
        try:
            for chunk in open_stream(assembler.received):
                if chunk.ref is not None:
                    assembler.confirm(chunk.ref)
                assembler.write(chunk.offset, chunk.data)
            return assembler.finish()
        except grpc.RpcError as err:
            failures += 1
            if not is_retryable(err) or failures > attempts:
                raise
            time.sleep(backoff.next_delay())
