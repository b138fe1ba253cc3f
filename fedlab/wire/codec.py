"""The wire codec: a :class:`~fedlab.Message` to bytes and back, without pickle.

Frame format
------------
::

    offset  size  content
    0       4     magic b"FLM1" (b"FLR1" for a bare RecordDict, e.g. a checkpoint)
    4       4     N, the header length, uint32 little-endian
    8       N     header: a protobuf ``fedlab.v1.Message`` (``fedlab.v1.RecordDict``),
                  see ``fedlab/proto/message.proto``
    8 + N   ...   the array buffers, concatenated in header order, nothing after them

The header holds metadata, the error, metrics, configs and for every array its name,
dtype, shape and byte count; array data stays out of protobuf, so arrays are neither
re-encoded nor limited by protobuf's 2 GiB message size.

Values keep their exact types (an int stays an int, ``True`` a bool, bytes bytes, a
list its element type); ints must fit in int64. Floats travel as ``double`` and come
back bit for bit, ``-0.0``, infinities and NaN payloads included, with protobuf's
default (upb) backend; the pure-Python backend turns every NaN in metrics and configs
into the canonical NaN. Array bytes never pass through protobuf and are always exact.

Decoding is bounded and validated. Anything that is too large, malformed or lies about
its sizes raises :class:`~fedlab.errors.CodecError` and nothing else. Arrays are not
copied when the input is ``bytes`` (or a memoryview of ``bytes``): each
:class:`~fedlab.records.Array` is a read-only view into it, which keeps the whole input
alive for as long as any of its arrays lives. Any other input (``bytearray``, a view of
a numpy array or an mmap) may change later, so :class:`~fedlab.records.Array` copies
each array out of it, unless the caller promises with ``frozen=True`` that a read-only
buffer never changes (a read-only mapping of shared memory that its writer has let go).

Size limit
----------
``max_size`` (default :data:`DEFAULT_MAX_MESSAGE_SIZE`, 64 GiB) caps the total frame.
Model size in fedlab is limited by memory, not by the transport, so the default is
meant to stop nonsense, not models; the decoder never allocates according to sizes the
header declares. Lower it where a peer must not make you hold more (e.g. a SuperLink
reassembling chunks from untrusted nodes).

Examples
--------
>>> import numpy as np
>>> from fedlab.message import Message
>>> from fedlab.records import ArrayRecord, MetricRecord, RecordDict
>>> msg = Message(RecordDict({"arrays": ArrayRecord([np.arange(3.0)]),
...                           "metrics": MetricRecord({"loss": 0.5})}), 7, "train")
>>> data = encode_message(msg)
>>> data[:4]
b'FLM1'
>>> back = decode_message(data)
>>> back.content["arrays"]["0"].numpy(), back.content["metrics"]["loss"]
(array([0., 1., 2.]), 0.5)
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

from google.protobuf.message import (  # type: ignore[import-untyped, unused-ignore]
    DecodeError,
    EncodeError,
)

from fedlab.errors import CodecError, MessageError
from fedlab.message import Error, Message, Metadata, validate_message_type
from fedlab.proto import MessageProto, RecordDictProto
from fedlab.records import RecordDict
from fedlab.wire._recordproto import record_dict_from_proto, record_dict_to_proto

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MAGIC",
    "RECORD_DICT_MAGIC",
    "decode_message",
    "decode_record_dict",
    "encode_message",
    "encode_record_dict",
    "message_parts",
    "record_dict_parts",
]

#: The largest frame :func:`decode_message` accepts unless told otherwise: 64 GiB.
DEFAULT_MAX_MESSAGE_SIZE = 64 * 2**30
#: The first four bytes of an encoded Message.
MAGIC = b"FLM1"
#: The first four bytes of an encoded RecordDict.
RECORD_DICT_MAGIC = b"FLR1"

_PREFIX = struct.Struct("<4sI")
_METADATA_FIELDS = tuple(f.name for f in dataclasses.fields(Metadata))
# Everything parsing or rebuilding may raise on hostile input; all become CodecError.
_DECODE_FAILURES = (DecodeError, struct.error, OverflowError, MemoryError, KeyError,
                    IndexError, ValueError, TypeError, RecursionError)  # fmt: skip


def encode_message(msg: Message) -> bytes:
    """Encode a message into one bytes object (see the module docstring for the frame).

    Raises
    ------
    CodecError
        If a value cannot travel: an int outside int64, a str that is not valid
        Unicode, an invalid message type or TTL, a node id outside ``[0, 2**64)``.
    """
    # One join, so the array data is copied once, straight into the result.
    return b"".join(message_parts(msg))


def message_parts(msg: Message) -> list[bytes | memoryview]:
    """The buffers whose concatenation is ``encode_message(msg)``, arrays not copied.

    For writers that place the frame somewhere themselves (shared memory, a file).

    Raises
    ------
    CodecError
        As :func:`encode_message`.
    """
    if not isinstance(msg, Message):
        raise CodecError(f"encode_message takes a Message, got {type(msg).__name__}.")
    proto = MessageProto()
    for name in _METADATA_FIELDS:
        value = getattr(msg.metadata, name)
        try:
            setattr(proto.metadata, name, value)
        except (TypeError, ValueError) as err:
            raise CodecError(
                f"metadata.{name} = {value!r} cannot be encoded ({err}); ids must be ints in "
                "[0, 2**64), ttl and created_at floats, the other fields str."
            ) from err
    _check_metadata(msg.metadata)  # after the loop, which has checked the types
    buffers: list[bytes | memoryview] = []
    if msg.error is not None:
        code, reason = msg.error.code, msg.error.reason
        try:
            proto.error.code, proto.error.reason = code, reason
        except (TypeError, ValueError) as err:
            raise CodecError(
                f"Error(code={code!r}, reason=...) cannot be encoded ({err}); the code must be "
                "an int in the int64 range and the reason a str."
            ) from err
    else:
        buffers = record_dict_to_proto(msg.content, proto.content)
    return _frame_parts(MAGIC, proto, buffers)


def decode_message(
    data: bytes | bytearray | memoryview,
    *,
    max_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    frozen: bool = False,
) -> Message:
    """Decode bytes made by :func:`encode_message` back into a :class:`~fedlab.Message`.

    Parameters
    ----------
    data
        The whole frame. With ``bytes`` the arrays are views into it (no copy).
    max_size
        Refuse frames larger than this many bytes.
    frozen
        Promise that ``data``, a read-only buffer, is never written again: the arrays
        are then views into it whatever its type (no copy).

    Raises
    ------
    CodecError
        If the bytes are not a valid message: too short or too large, wrong magic,
        a header that does not parse or that lies about array sizes, an unknown dtype,
        an invalid message type or TTL, or not exactly one of content and error; or
        if ``frozen`` is given a writable buffer.
    """
    header, payload = _unframe(data, MAGIC, max_size, frozen)
    try:
        proto = MessageProto.FromString(header)
        if not proto.HasField("metadata"):
            raise CodecError("The header has no metadata; every message needs it.")
        metadata = Metadata(**{name: getattr(proto.metadata, name) for name in _METADATA_FIELDS})
        _check_metadata(metadata)
        if proto.HasField("content") == proto.HasField("error"):
            held = "both content and an error" if proto.HasField("error") else "neither"
            raise CodecError(f"The header holds {held}; a message holds exactly one of them.")
        if proto.HasField("error"):
            if payload.nbytes:
                raise CodecError(
                    f"An error reply carries no arrays, but {payload.nbytes} bytes follow its "
                    "header: the message has trailing bytes."
                )
            error = Error(code=proto.error.code, reason=proto.error.reason)
            return Message.from_parts(metadata, error=error)
        content = record_dict_from_proto(proto.content, payload, frozen=frozen)
        return Message.from_parts(metadata, content=content)
    except _DECODE_FAILURES as err:
        if isinstance(err, CodecError):
            raise
        raise CodecError(
            f"The message header is malformed ({err}); expected a fedlab.v1.Message protobuf: "
            "the bytes are corrupt or were not made by encode_message."
        ) from err


def encode_record_dict(records: RecordDict) -> bytes:
    """Encode a RecordDict alone (e.g. a checkpoint) in the same frame, magic ``FLR1``.

    Raises
    ------
    CodecError
        If a value cannot travel, as for :func:`encode_message`.
    """
    return b"".join(record_dict_parts(records))


def record_dict_parts(records: RecordDict) -> list[bytes | memoryview]:
    """The buffers whose concatenation is ``encode_record_dict(records)``, arrays not copied.

    Raises
    ------
    CodecError
        As :func:`encode_record_dict`.
    """
    if not isinstance(records, RecordDict):
        raise CodecError(f"encode_record_dict takes a RecordDict, got {type(records).__name__}.")
    proto = RecordDictProto()
    buffers = record_dict_to_proto(records, proto)
    return _frame_parts(RECORD_DICT_MAGIC, proto, buffers)


def decode_record_dict(
    data: bytes | bytearray | memoryview,
    *,
    max_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    frozen: bool = False,
) -> RecordDict:
    """Decode bytes made by :func:`encode_record_dict`; arrays as in :func:`decode_message`.

    Raises
    ------
    CodecError
        If the bytes are not a valid encoded RecordDict, or ``frozen`` is given a
        writable buffer.
    """
    header, payload = _unframe(data, RECORD_DICT_MAGIC, max_size, frozen)
    try:
        return record_dict_from_proto(RecordDictProto.FromString(header), payload, frozen=frozen)
    except _DECODE_FAILURES as err:
        if isinstance(err, CodecError):
            raise
        raise CodecError(
            f"The RecordDict header is malformed ({err}); expected a fedlab.v1.RecordDict "
            "protobuf: the bytes are corrupt or were not made by encode_record_dict."
        ) from err


def _check_metadata(metadata: Metadata) -> None:
    # Checked on both sides, so that we never send what the other side would refuse.
    try:
        validate_message_type(metadata.message_type)
    except MessageError as err:
        raise CodecError(str(err)) from err
    if not metadata.ttl > 0:
        raise CodecError(
            f"metadata.ttl is {metadata.ttl!r}; expected a positive number of seconds."
        )


def _frame_parts(
    magic: bytes, proto: Any, buffers: list[bytes | memoryview]
) -> list[bytes | memoryview]:
    try:
        header = proto.SerializeToString()
        if len(header) >= 2**31:  # a backend that does not enforce protobuf's own limit
            raise EncodeError(f"the header is {len(header)} bytes")
    except (EncodeError, ValueError, MemoryError) as err:
        raise CodecError(
            f"The header cannot be serialised ({err}); protobuf caps it at 2 GiB: "
            "move large data out of metrics and configs into an ArrayRecord."
        ) from err
    return [_PREFIX.pack(magic, len(header)) + header, *buffers]


def _unframe(
    data: bytes | bytearray | memoryview, magic: bytes, max_size: int, frozen: bool
) -> tuple[memoryview, memoryview]:
    """Return (header, payload) views of a frame, checking everything but the header."""
    if not isinstance(max_size, int) or max_size <= 0:
        raise CodecError(f"max_size must be a positive int number of bytes, got {max_size!r}.")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(
            f"Cannot decode a {type(data).__name__}; expected bytes, bytearray or memoryview."
        )
    try:
        view = memoryview(data).cast("B")
    except (TypeError, ValueError) as err:
        raise CodecError(
            f"Cannot decode this memoryview ({err}); pass a contiguous buffer."
        ) from err
    if frozen and not view.readonly:
        raise CodecError(
            "frozen=True promises a buffer that never changes, but this one is writable; "
            "pass a read-only view, or leave frozen out to have the arrays copied."
        )
    size = view.nbytes
    if size > max_size:
        raise CodecError(
            f"The message is {size} bytes, above max_size={max_size}; raise max_size if "
            "you trust the sender."
        )
    if size < _PREFIX.size:
        raise CodecError(
            f"The message is {size} bytes, shorter than the {_PREFIX.size}-byte frame prefix: "
            "it is truncated or not a fedlab message."
        )
    got, length = _PREFIX.unpack_from(view)
    if got != magic:
        raise CodecError(
            f"The message starts with {got!r}, expected {magic!r}: it is not a fedlab "
            "frame of this kind, or it was written by an incompatible version."
        )
    if length > size - _PREFIX.size:
        raise CodecError(
            f"The header length is {length} bytes, but only {size - _PREFIX.size} bytes "
            "follow the prefix: the message is truncated."
        )
    end = _PREFIX.size + length
    return view[_PREFIX.size : end], view[end:]
