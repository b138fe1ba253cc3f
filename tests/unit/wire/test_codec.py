"""The wire codec: Message ↔ bytes, bit-exact and bounded."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import mmap
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedlab.errors import CodecError
from fedlab.message import Error, ErrorCode, Message, Metadata
from fedlab.proto import MessageProto, MetadataProto
from fedlab.records import (
    ALLOWED_DTYPES,
    Array,
    ArrayRecord,
    ConfigRecord,
    MetricRecord,
    RecordDict,
)
from fedlab.wire import _recordproto, codec
from fedlab.wire.codec import (
    DEFAULT_MAX_MESSAGE_SIZE,
    MAGIC,
    decode_message,
    decode_record_dict,
    encode_message,
    encode_record_dict,
)

REPO = Path(__file__).resolve().parents[3]
PREFIX = struct.Struct("<4sI")


def _message(content: RecordDict | None = None) -> Message:
    return Message(content if content is not None else RecordDict(), 7, "train", group_id="3")


def _small() -> bytes:
    """A small message with an array, metrics and configs."""
    return encode_message(_message(RecordDict({
        "arrays": ArrayRecord({"w": np.arange(3, dtype=np.float32)}),
        "metrics": MetricRecord({"loss": 0.5}),
        "config": ConfigRecord({"lr": 0.1, "tag": "x"}),
    })))  # fmt: skip


def _split(data: bytes) -> tuple[Any, bytes]:
    _, length = PREFIX.unpack_from(data)
    return MessageProto.FromString(data[8 : 8 + length]), data[8 + length :]


def _reframe(data: bytes, mutate: Callable[[Any], object]) -> bytes:
    """Re-encode ``data`` after ``mutate`` changed its header; the array bytes stay."""
    proto, payload = _split(data)
    mutate(proto)
    header = proto.SerializeToString()
    return PREFIX.pack(MAGIC, len(header)) + header + payload


def _bits(value: Any) -> Any:
    """A value with floats replaced by their bit patterns and types made explicit."""
    if isinstance(value, list):
        return ("list", [_bits(v) for v in value])
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    return (type(value).__name__, value)


def _nan(payload: int) -> float:
    value: float = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000000 | payload))[0]
    return value


def _random_array(dtype: str, shape: tuple[int, ...], rng: np.random.Generator) -> Array:
    count = math.prod(shape)
    if dtype == "bool":
        return Array.from_numpy(rng.integers(0, 2, size=shape).astype(bool))
    # Random bytes reach every bit pattern, NaN payloads and signalling NaNs included.
    raw = rng.bytes(count * ALLOWED_DTYPES[dtype])
    if dtype == "bfloat16":
        return Array("bfloat16", shape, raw)
    return Array.from_numpy(
        np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)
    )


@pytest.mark.parametrize("shape", [(), (0,), (2, 0, 3), (5,), (3, 4)], ids=str)
def test_a_message_with_every_allowed_dtype_round_trips_bit_exactly(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    arrays = {dtype: _random_array(dtype, shape, rng) for dtype in ALLOWED_DTYPES}
    back = decode_message(encode_message(_message(RecordDict({"a": ArrayRecord(arrays)}))))
    decoded = back.content["a"]
    assert isinstance(decoded, ArrayRecord)
    assert list(decoded) == list(ALLOWED_DTYPES)
    for name, array in arrays.items():
        got = decoded[name]
        assert (got.dtype, got.shape) == (array.dtype, array.shape)
        assert bytes(got.data) == bytes(array.data)


def test_non_contiguous_and_big_endian_numpy_sources_round_trip_bit_exactly() -> None:
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    base[0, 0] = _nan(0x123)
    sources = {
        "strided": base[:, ::2],
        "transposed": base.T,
        "big-endian": base.astype(">f8"),
        "big-endian-int": np.arange(5, dtype=">i4"),
        "complex": (np.arange(8) + 1j * np.arange(8)).astype(">c16")[::2],
    }
    back = decode_message(encode_message(_message(RecordDict({"a": ArrayRecord(sources)}))))
    for name, source in sources.items():
        got = back.content["a"][name].numpy()  # type: ignore[union-attr]
        expected = np.ascontiguousarray(source.astype(source.dtype.newbyteorder("<")))
        assert got.shape == source.shape
        assert got.tobytes() == expected.tobytes()


def test_metrics_and_configs_round_trip_with_exact_types_and_order() -> None:
    metrics = MetricRecord({
        "int": 72, "big": 2**63 - 1, "small": -(2**63), "float": 0.1, "neg-zero": -0.0,
        "nan": math.nan, "inf": math.inf, "-inf": -math.inf,
        "ints": [1, -2, 3], "floats": [1.0, -0.0, math.nan], "empty": [],
    })  # fmt: skip
    configs = ConfigRecord({
        "int": 3, "float": 3.0, "true": True, "false": False, "str": "héllo ✓", "empty-str": "",
        "bytes": b"\x00\xff", "ints": [0, 2**62], "floats": [0.5], "bools": [True, False],
        "strs": ["a", ""], "bytes-list": [b"", b"\x01"], "empty": [],
    })  # fmt: skip
    content = RecordDict({"m": metrics, "c": configs})
    back = decode_message(encode_message(_message(content))).content
    assert list(back) == ["m", "c"]
    assert isinstance(back["m"], MetricRecord) and isinstance(back["c"], ConfigRecord)
    for name, record in content.items():
        assert list(back[name]) == list(record)
        for key, value in record.items():
            assert _bits(back[name][key]) == _bits(value), (name, key)  # type: ignore[index]


def test_nan_payloads_in_metrics_and_configs_round_trip_bit_exactly() -> None:
    values = {"quiet": _nan(0x8_0000_0000_BEEF), "signalling": _nan(1), "list": [_nan(0x123)]}
    content = RecordDict({"m": MetricRecord(values), "c": ConfigRecord(values)})
    back = decode_message(encode_message(_message(content))).content
    for name in content:
        for key, value in values.items():
            assert _bits(back[name][key]) == _bits(value), (name, key)  # type: ignore[index]


def test_empty_records_and_empty_content_keep_their_kinds() -> None:
    content = RecordDict({"a": ArrayRecord(), "m": MetricRecord(), "c": ConfigRecord()})
    back = decode_message(encode_message(_message(content))).content
    assert [type(r) for r in back.values()] == [ArrayRecord, MetricRecord, ConfigRecord]
    empty = decode_message(encode_message(_message()))
    assert empty.has_content() and len(empty.content) == 0


def test_metadata_round_trips_every_field() -> None:
    msg = _message().with_metadata(
        run_id=2**64 - 1, message_id="m-ü", src_node_id=2**63 + 5, dst_node_id=0,
        reply_to_message_id="r1", group_id="12", message_type="query.stats-v2",
        ttl=0.001, created_at=1_700_000_000.123456,
    )  # fmt: skip
    back = decode_message(encode_message(msg)).metadata
    assert back == msg.metadata
    for field in dataclasses.fields(Metadata):
        assert type(getattr(back, field.name)) is type(getattr(msg.metadata, field.name))


def test_the_header_schema_has_every_metadata_field() -> None:
    names = {f.name for f in dataclasses.fields(Metadata)}
    assert set(MetadataProto.DESCRIPTOR.fields_by_name) == names


def test_an_error_reply_round_trips() -> None:
    error = Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, "ValueError: boom\nTraceback ...")
    reply = _message().reply(error)
    back = decode_message(encode_message(reply))
    assert back.has_error() and not back.has_content()
    assert back.error == error
    assert back.metadata == reply.metadata


def test_a_record_dict_round_trips_alone_under_its_own_magic() -> None:
    rd = RecordDict({"a": ArrayRecord([np.ones(2)]), "c": ConfigRecord({"k": [b"v"]})})
    data = encode_record_dict(rd)
    assert decode_record_dict(data) == rd
    with pytest.raises(CodecError, match="expected b'FLM1'"):
        decode_message(data)
    with pytest.raises(CodecError, match="expected b'FLR1'"):
        decode_record_dict(_small())


def test_decoding_bytes_does_not_copy_array_data() -> None:
    data = _small()
    array = decode_message(data).content["arrays"]["w"]
    assert isinstance(array, Array) and isinstance(array.data, memoryview)
    assert array.data.obj is data and array.data.readonly
    view = array.numpy()
    assert np.shares_memory(view, np.frombuffer(data, dtype=np.uint8))
    assert not view.flags.writeable


def test_decoding_a_memoryview_of_bytes_does_not_copy_array_data_either() -> None:
    data = _small()
    array = decode_message(memoryview(data)[:]).content["arrays"]["w"]
    assert isinstance(array, Array) and isinstance(array.data, memoryview)
    assert array.data.obj is data


@pytest.mark.parametrize("read_only_view", [False, True])
def test_decoding_a_mutable_buffer_copies_so_later_changes_do_not_leak_in(
    read_only_view: bool,
) -> None:
    buffer = bytearray(_small())
    decoded = decode_message(memoryview(buffer).toreadonly() if read_only_view else buffer)
    buffer[-12:] = bytes(12)
    array = decoded.content["arrays"]["w"]
    assert isinstance(array, Array) and array.numpy().tolist() == [0.0, 1.0, 2.0]


def test_a_frozen_read_only_mapping_is_decoded_in_place(tmp_path: Path) -> None:
    message_frame = _small()
    records = RecordDict({"arrays": ArrayRecord({"w": np.arange(3, dtype=np.float32)})})
    path = tmp_path / "frames"
    path.write_bytes(message_frame + encode_record_dict(records))
    with path.open("rb") as file:
        mapping = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    view = memoryview(mapping)
    decoded = [
        decode_message(view[: len(message_frame)], frozen=True).content["arrays"]["w"],
        decode_record_dict(view[len(message_frame) :], frozen=True)["arrays"]["w"],
    ]
    for array in decoded:
        assert isinstance(array.data, memoryview) and array.data.obj is mapping
        assert array.numpy().tolist() == [0.0, 1.0, 2.0]
    copied = decode_message(view[: len(message_frame)]).content["arrays"]["w"]
    assert isinstance(copied.data, bytes)  # without the promise, a mapping is copied out
    del decoded, copied, array, view
    mapping.close()


def test_frozen_refuses_a_writable_buffer() -> None:
    for decode in (decode_message, decode_record_dict):
        with pytest.raises(CodecError) as caught:
            decode(bytearray(_small()), frozen=True)
        assert str(caught.value) == (
            "frozen=True promises a buffer that never changes, but this one is writable; "
            "pass a read-only view, or leave frozen out to have the arrays copied."
        )


def test_a_memoryview_input_is_accepted_and_a_strided_one_is_rejected() -> None:
    data = _small()
    assert decode_message(memoryview(data)).content == decode_message(data).content
    with pytest.raises(CodecError, match="contiguous"):
        decode_message(memoryview(bytearray(data))[::2])
    with pytest.raises(CodecError, match="expected bytes"):
        decode_message("FLM1")  # type: ignore[arg-type]


def test_every_truncated_prefix_is_rejected() -> None:
    data = _small()
    for length in range(len(data)):
        with pytest.raises(CodecError):
            decode_message(data[:length])


@pytest.mark.parametrize("garbage", [b"\x00", b"trailing bytes"])
def test_trailing_garbage_is_rejected(garbage: bytes) -> None:
    with pytest.raises(CodecError, match="trailing bytes"):
        decode_message(_small() + garbage)
    reply = encode_message(_message().reply(Error(ErrorCode.TIMEOUT)))
    with pytest.raises(CodecError, match="trailing bytes"):
        decode_message(reply + garbage)


def _array_header(proto: Any) -> Any:
    return proto.content.records[0].array_record.arrays[0]


def _set(**fields: Any) -> Callable[[Any], None]:
    def mutate(proto: Any) -> None:
        header = _array_header(proto)
        for name, value in fields.items():
            if name == "shape":
                del header.shape[:]
                header.shape.extend(value)
            else:
                setattr(header, name, value)

    return mutate


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (_set(nbytes=13), "declares 13 bytes, but dtype float32 and shape \\(3,\\) need 12"),
        (_set(nbytes=11), "declares 11 bytes"),
        (_set(shape=[4]), "declares 12 bytes, but dtype float32 and shape \\(4,\\) need 16"),
        (_set(shape=[5], nbytes=20), "declares 20 bytes of array data, but 12 .* truncated"),
        (_set(shape=[2], nbytes=8), "declares 8 bytes of array data, but 12 .* trailing bytes"),
        (_set(dtype="float128"), "dtype 'float128'; expected one of bool, int8"),
        (_set(dtype="object"), "dtype 'object'"),
        (_set(shape=[2**63, 0], nbytes=0), "at most 2\\*\\*63 - 1"),
        (_set(shape=[2**40, 2**40], nbytes=0), "at most 2\\*\\*63 - 1"),
        (_set(shape=[1] * 65 + [3]), "66 dimensions; at most 64"),
    ],
)
def test_a_header_that_lies_about_array_sizes_is_rejected(
    mutate: Callable[[Any], None], match: str
) -> None:
    with pytest.raises(CodecError, match=match):
        decode_message(_reframe(_small(), mutate))


def _duplicate_array(proto: Any) -> None:
    array_record = proto.content.records[0].array_record
    array_record.arrays.add().CopyFrom(array_record.arrays[0])


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda p: p.metadata.__setattr__("message_type", "fit"), "'fit' is not valid"),
        (lambda p: p.metadata.__setattr__("ttl", 0.0), "ttl is 0.0"),
        (lambda p: p.metadata.__setattr__("ttl", math.nan), "ttl is nan"),
        (lambda p: p.ClearField("metadata"), "no metadata"),
        (lambda p: p.error.SetInParent(), "holds both content and an error; a message holds"),
        (lambda p: p.ClearField("content"), "holds neither; a message holds exactly one"),
        (_duplicate_array, "appears twice"),
        (lambda p: p.content.records.add().CopyFrom(p.content.records[1]), "two records named"),
        (lambda p: p.content.records.add(name="x"), "'x' has no record set"),
        (lambda p: p.content.records[1].metric_record.entries.add(key="k"), "'k' has no value"),
        (
            lambda p: p.content.records[1].metric_record.entries.add(key="k", str_value="v"),
            "'metrics' is not a valid MetricRecord.*'k'",
        ),
    ],
)
def test_an_invalid_header_is_rejected(mutate: Callable[[Any], None], match: str) -> None:
    with pytest.raises(CodecError, match=match):
        decode_message(_reframe(_small(), mutate))


def test_a_wrong_magic_a_header_past_the_end_and_an_unparsable_header_are_rejected() -> None:
    data = _small()
    with pytest.raises(CodecError, match="starts with b'XLM1', expected b'FLM1'"):
        decode_message(b"X" + data[1:])
    with pytest.raises(CodecError, match="header length is .* truncated"):
        decode_message(PREFIX.pack(MAGIC, len(data)) + data[8:])
    with pytest.raises(CodecError, match="header is malformed"):
        decode_message(PREFIX.pack(MAGIC, 3) + b"\xff\xff\xff")
    bad_utf8 = b"\x0a\x03\x12\x01\xff"  # metadata.message_id = b"\xff"
    with pytest.raises(CodecError, match="header is malformed"):
        decode_message(PREFIX.pack(MAGIC, len(bad_utf8)) + bad_utf8)


def test_max_size_is_enforced() -> None:
    data = _small()
    assert decode_message(data, max_size=len(data)).has_content()
    with pytest.raises(CodecError, match=f"{len(data)} bytes, above max_size={len(data) - 1}"):
        decode_message(data, max_size=len(data) - 1)
    with pytest.raises(CodecError, match="max_size must be a positive int"):
        decode_message(data, max_size=0)
    assert DEFAULT_MAX_MESSAGE_SIZE == 64 * 2**30


@pytest.mark.parametrize(
    ("kind", "key", "value", "match"),
    [
        (MetricRecord, "steps", 2**63, "MetricRecord\\['steps'\\] .* int 9223372036854775808"),
        (ConfigRecord, "seed", -(2**63) - 1, "ConfigRecord\\['seed'\\] .* outside the int64"),
        (ConfigRecord, "ids", [1, 2**64], "ConfigRecord\\['ids'\\] .* int 18446744073709551616"),
        (ConfigRecord, "s", "\ud800", "ConfigRecord\\['s'\\] of record 'r'"),
    ],
)
def test_a_value_that_cannot_travel_is_rejected_when_encoding(
    kind: type[MetricRecord | ConfigRecord], key: str, value: Any, match: str
) -> None:
    record = kind()
    # Records refuse out-of-range ints themselves; plant one to test the codec's own guard.
    record._data[key] = value
    with pytest.raises(CodecError, match=match):
        encode_message(_message(RecordDict({"r": record})))


def test_metadata_that_cannot_travel_is_rejected_when_encoding() -> None:
    with pytest.raises(CodecError, match="metadata.dst_node_id = -1"):
        encode_message(_message().with_metadata(dst_node_id=-1))
    with pytest.raises(CodecError, match="'fit' is not valid"):
        encode_message(_message().with_metadata(message_type="fit"))
    with pytest.raises(CodecError, match="metadata.ttl = 'soon'"):
        encode_message(_message().with_metadata(ttl="soon"))
    with pytest.raises(CodecError, match="takes a Message"):
        encode_message(RecordDict())  # type: ignore[arg-type]


@settings(max_examples=300, database=None, deadline=None)
@given(st.binary(max_size=256))
def test_random_bytes_only_ever_raise_codec_error(data: bytes) -> None:
    for candidate in (data, MAGIC + data, PREFIX.pack(MAGIC, len(data)) + data):
        with pytest.raises(CodecError):
            decode_message(candidate)


@settings(max_examples=300, database=None, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6))
def test_corrupted_messages_decode_or_raise_codec_error(edits: list[tuple[int, int]]) -> None:
    data = bytearray(_small())
    for position, value in edits:
        data[position % len(data)] = value
    try:
        decode_message(bytes(data))
    except CodecError:
        pass


def test_the_codec_does_not_import_pickle() -> None:
    for module in (codec, _recordproto, sys.modules["fedlab.proto"]):
        tree = ast.parse(inspect.getsource(module))
        imported = [
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        ] + [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [name for name in imported if "pickle" in name], module.__name__


def test_public_names_are_sorted() -> None:
    assert codec.__all__ == sorted(codec.__all__)
    assert sys.modules["fedlab.proto"].__all__ == sorted(sys.modules["fedlab.proto"].__all__)


def test_the_committed_descriptor_matches_the_proto_file() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "generate_proto.py"), "--check"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
