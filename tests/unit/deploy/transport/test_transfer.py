"""Objects in chunks: checksums, sizes, order and resuming a broken download."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from fedlab.deploy import proto as pb
from fedlab.deploy.transport.chunks import Chunk, decode_chunk, encode_chunk
from fedlab.deploy.transport.transfer import (
    Assembler,
    check_digest,
    download,
    iter_chunks,
    object_ref,
)
from fedlab.errors import TransferError

DATA = bytes(range(256)) * 40  # 10240 bytes


def test_an_object_is_named_by_its_sha256_and_its_size() -> None:
    ref = object_ref(DATA)
    assert (ref.digest, ref.size) == (hashlib.sha256(DATA).hexdigest(), len(DATA))


def test_chunks_cover_the_object_in_order_and_only_the_first_carries_the_ref() -> None:
    chunks = list(iter_chunks(DATA, object_ref(DATA), chunk_size=4096))
    assert [(c.offset, len(c.data)) for c in chunks] == [(0, 4096), (4096, 4096), (8192, 2048)]
    assert [c.ref is not None for c in chunks] == [True, False, False]
    assert b"".join(c.data for c in chunks) == DATA


def test_an_empty_object_is_one_empty_chunk_with_its_ref() -> None:
    (chunk,) = iter_chunks(b"", object_ref(b""))
    assert chunk.ref.size == 0 and chunk.data == b""
    assembler = Assembler(object_ref(b""))
    assembler.write(0, chunk.data)
    assert assembler.finish() == b""


def test_a_flipped_byte_is_caught_by_the_checksum() -> None:
    damaged = bytearray(DATA)
    damaged[5000] ^= 1
    assembler = Assembler(object_ref(DATA))
    for chunk in iter_chunks(bytes(damaged), object_ref(DATA), chunk_size=1000):
        assembler.write(chunk.offset, chunk.data)
    with pytest.raises(TransferError, match="arrived damaged"):
        assembler.finish()


def test_missing_extra_or_out_of_order_bytes_are_refused() -> None:
    short = Assembler(object_ref(DATA))
    short.write(0, DATA[:100])
    with pytest.raises(TransferError, match="stopped after 100"):
        short.finish()
    with pytest.raises(TransferError, match="more arrived"):
        Assembler(object_ref(DATA[:10])).write(0, DATA[:11])
    with pytest.raises(TransferError, match="out of order"):
        Assembler(object_ref(DATA)).write(10, DATA[10:20])


def test_an_object_above_the_receivers_limit_is_refused_before_any_allocation() -> None:
    ref = pb.ObjectRef(digest="0" * 64, size=2**40)  # 1 TiB announced
    with pytest.raises(TransferError, match="above the limit"):
        Assembler(ref, max_size=2**30)


def test_digests_must_be_lowercase_sha256_hex() -> None:
    assert check_digest("a" * 64) == "a" * 64
    for bad in ("A" * 64, "a" * 63, "../../etc/passwd", ""):
        with pytest.raises(TransferError, match="not an object digest"):
            check_digest(bad)


class _Unavailable(grpc.RpcError):
    def code(self) -> Any:
        return grpc.StatusCode.UNAVAILABLE


def test_a_broken_download_resumes_from_the_last_byte_received() -> None:
    ref = object_ref(DATA)
    offsets: list[int] = []

    def open_stream(offset: int) -> Iterator[Any]:
        offsets.append(offset)
        for chunk in iter_chunks(DATA, ref, offset=offset, chunk_size=3000):
            yield chunk
            if len(offsets) == 1 and chunk.offset == 3000:
                raise _Unavailable()  # the connection drops after two chunks

    assert download(open_stream, ref) == DATA
    assert offsets == [0, 6000]


def test_a_download_that_keeps_failing_gives_up() -> None:
    def open_stream(offset: int) -> Iterator[Any]:
        raise _Unavailable()
        yield  # pragma: no cover

    with pytest.raises(grpc.RpcError):
        download(open_stream, object_ref(DATA), attempts=1)


def test_the_chunk_codec_writes_and_reads_the_protobuf_wire_format() -> None:
    ref = object_ref(DATA)
    fast = Chunk(offset=2**40, data=memoryview(DATA)[10:5000], ref=ref, node_id=2**63 + 5)
    parsed = pb.ObjectChunk.FromString(encode_chunk(fast))  # what any protobuf reader sees
    assert (parsed.offset, parsed.data, parsed.ref, parsed.node_id) == (2**40, DATA[10:5000], ref, 2**63 + 5)
    back = decode_chunk(parsed.SerializeToString())  # and what protobuf writers send
    assert (back.offset, bytes(back.data), back.ref, back.node_id) == (2**40, DATA[10:5000], ref, 2**63 + 5)
    assert decode_chunk(encode_chunk(Chunk(offset=0, data=b""))).ref is None


@pytest.mark.parametrize("raw", [b"\x1a\xff\xff", b"\x1a\x05ab", b"\x10", b"\x0f", b"\x09\x00"])
def test_a_malformed_chunk_is_refused(raw: bytes) -> None:
    with pytest.raises(Exception):  # noqa: B017  ValueError or protobuf's DecodeError
        decode_chunk(raw)
