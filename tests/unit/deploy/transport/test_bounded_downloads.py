"""Downloads allocate what the sender really holds, never what a message header claims."""

from __future__ import annotations

import resource
from collections.abc import Iterator

import pytest

from fedlab.deploy import proto as pb
from fedlab.deploy.transport.chunks import Chunk
from fedlab.deploy.transport.transfer import download, object_ref
from fedlab.errors import TransferError

LIE = 4 * 2**30
BOUND = 64 * 2**20  # far below the lie, far above what the real object needs


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def test_a_header_that_overstates_the_size_is_refused_before_allocating() -> None:
    data = b"ten bytes!"
    real = object_ref(data)
    announced = pb.ObjectRef(digest=real.digest, size=LIE)  # what a lying reply header says

    def stream(offset: int) -> Iterator[Chunk]:  # the SuperLink sends its stored ref first
        yield Chunk(offset=offset, data=data[offset:], ref=real)

    before = peak_rss()
    with pytest.raises(TransferError, match="announced as 4294967296 bytes, but the sender holds"):
        download(stream, announced)
    assert peak_rss() - before < BOUND


def test_a_sender_without_a_ref_makes_memory_grow_only_with_what_arrives() -> None:
    data = b"x" * 1000
    announced = pb.ObjectRef(digest=object_ref(data).digest, size=LIE)

    def stream(offset: int) -> Iterator[Chunk]:
        yield Chunk(offset=offset, data=data)

    before = peak_rss()
    with pytest.raises(TransferError, match="stopped after 1000 of 4294967296 bytes"):
        download(stream, announced)
    assert peak_rss() - before < BOUND


def test_an_object_whose_sender_confirms_its_size_downloads_whole() -> None:
    data = bytes(range(256)) * 40
    ref = object_ref(data)
    calls: list[int] = []

    def stream(offset: int) -> Iterator[Chunk]:
        calls.append(offset)
        yield Chunk(offset=offset, data=data[offset : offset + 4096], ref=ref)
        yield Chunk(offset=offset + 4096, data=data[offset + 4096 :])

    assert download(stream, ref) == data
    assert calls == [0]
