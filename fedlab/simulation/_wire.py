"""A client call as bytes: what the grid and a worker process write into a segment.

A call crosses as one shared-memory segment (see ``_shm``) holding a head and then frames
of fedlab's codec (``fedlab.records.codec``)::

    request   head "FLPQ" run_id node_id | Message frame | state frame | config frame
    reply     head "FLPA"                | Message frame | state frame

The head gives each frame's offset and length. The Message frames (magic ``FLM1``) and
RecordDict frames (``FLR1``) are exactly what :func:`~fedlab.records.codec.encode_message`
and :func:`~fedlab.records.codec.encode_record_dict` make, taken as the codec's pieces
(``message_parts``, ``record_dict_parts``) so that array buffers are written straight into
the segment instead of being joined into one bytes object first. The config frame holds the Context's
``node_config`` and ``run_config`` as two ConfigRecords. Each frame starts where its
array data falls on a 64-byte boundary, so arrays read in place are aligned.

Reading keeps every array as a slice of the segment's view, not a copy. That is safe
because the view is of immutable bytes: a bytes object or a read-only mapping of a
segment that nobody writes again (``_shm.open_segment``). The one exception is the state
the grid keeps for a node: it lives for the whole run, so :func:`decode_reply` copies it
out rather than pin the reply's segment (and a file descriptor) per node.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Sequence
from typing import Any

from google.protobuf.message import (  # type: ignore[import-untyped, unused-ignore]
    DecodeError,
)

from fedlab.context import Context
from fedlab.errors import CodecError
from fedlab.message import Error, Message, Metadata
from fedlab.proto import MessageProto, RecordDictProto
from fedlab.records import Array, ArrayRecord, ConfigRecord, RecordDict
from fedlab.records._recordproto import (
    check_array_header,
    record_dict_from_proto,
)
from fedlab.records.codec import MAGIC, RECORD_DICT_MAGIC, decode_record_dict
from fedlab.records.codec import message_parts as message_frame
from fedlab.records.codec import record_dict_parts as record_dict_frame
from fedlab.simulation._shm import Buffer

__all__ = [
    "decode_reply",
    "decode_request",
    "encode_reply",
    "encode_request",
    "message_frame",
    "read_message",
    "read_record_dict",
    "record_dict_frame",
]

_PREFIX = struct.Struct("<4sI")  # the codec's frame prefix: magic, header length
_REQUEST = struct.Struct("<4s4xQQ6Q")  # magic, run id, node id, 3 x (offset, length)
_REPLY = struct.Struct("<4s4x4Q")  # magic, 2 x (offset, length)
_REQUEST_MAGIC = b"FLPQ"
_REPLY_MAGIC = b"FLPA"
_ALIGN = 64
_FIELDS = tuple(f.name for f in dataclasses.fields(Metadata))
_NODE_CONFIG, _RUN_CONFIG = "node-config", "run-config"
# What parsing a damaged header may raise; all of it becomes CodecError.
_PARSE_FAILURES = (DecodeError, struct.error, KeyError, IndexError, ValueError, TypeError)

Frame = list[bytes | memoryview]  # the prefix and header as one bytes object, then the array buffers


def encode_request(message: Message, context: Context) -> list[Buffer]:
    """Lay out ``message`` and ``context`` as the buffers of a request segment."""
    config = RecordDict(
        {
            _NODE_CONFIG: ConfigRecord(context.node_config),
            _RUN_CONFIG: ConfigRecord(context.run_config),
        }
    )
    frames = [message_frame(message), record_dict_frame(context.state), record_dict_frame(config)]
    try:
        ids = (context.run_id, context.node_id)
        return _layout(_REQUEST, _REQUEST_MAGIC, ids, frames)
    except struct.error as err:
        raise CodecError(
            f"run_id {context.run_id!r} and node_id {context.node_id!r} must be ints in "
            f"[0, 2**64) to reach a worker process ({err})."
        ) from err


def decode_request(view: memoryview) -> tuple[Message, Context]:
    """Read a request segment: the message and a Context whose arrays view ``view``."""
    fields = _unpack(_REQUEST, _REQUEST_MAGIC, view)
    run_id, node_id = fields[0], fields[1]
    message, state, config = _frames(view, fields[2:])
    records = read_record_dict(config)
    node_config, run_config = records.get(_NODE_CONFIG), records.get(_RUN_CONFIG)
    if not isinstance(node_config, ConfigRecord) or not isinstance(run_config, ConfigRecord):
        raise CodecError("The request's config frame lacks the node or run config.")
    context = Context(
        run_id=run_id,
        node_id=node_id,
        node_config=dict(node_config),  # type: ignore[arg-type]
        run_config=dict(run_config),  # type: ignore[arg-type]
        state=read_record_dict(state),
    )
    return read_message(message), context


def encode_reply(reply: Message, state: RecordDict) -> list[Buffer]:
    """Lay out a reply and the node's new state as the buffers of a reply segment."""
    return _layout(_REPLY, _REPLY_MAGIC, (), [message_frame(reply), record_dict_frame(state)])


def decode_reply(view: memoryview) -> tuple[Message, RecordDict]:
    """Read a reply segment: the reply (arrays view ``view``) and the state (a copy)."""
    message, state = _frames(view, _unpack(_REPLY, _REPLY_MAGIC, view))
    # bytes() copies the state's frame; the codec then reads its arrays from that copy.
    return read_message(message), decode_record_dict(bytes(state))


def read_message(frame: memoryview) -> Message:
    """Decode a Message frame; its arrays are slices of ``frame``, which must be immutable."""
    header, payload = _split(frame, MAGIC)
    try:
        proto = MessageProto.FromString(header)
        metadata = Metadata(**{name: getattr(proto.metadata, name) for name in _FIELDS})
        if proto.HasField("error"):
            error = Error(code=proto.error.code, reason=proto.error.reason)
            return Message.from_parts(metadata, error=error)
        return Message.from_parts(metadata, content=_records(proto.content, payload))
    except _PARSE_FAILURES as err:
        if isinstance(err, CodecError):
            raise
        raise CodecError(f"A message frame from a worker is malformed ({err}).") from err


def read_record_dict(frame: memoryview) -> RecordDict:
    """Decode a RecordDict frame; its arrays are slices of ``frame``, which must be immutable."""
    header, payload = _split(frame, RECORD_DICT_MAGIC)
    try:
        return _records(RecordDictProto.FromString(header), payload)
    except _PARSE_FAILURES as err:
        if isinstance(err, CodecError):
            raise
        raise CodecError(f"A record frame from a worker is malformed ({err}).") from err


def _records(proto: Any, payload: memoryview) -> RecordDict:
    # The codec builds and checks everything but the arrays, which are then added as views.
    arrays = []
    for entry in proto.records:
        if entry.WhichOneof("record") == "array_record":
            headers = [
                (h.name, h.dtype, tuple(h.shape), h.nbytes) for h in entry.array_record.arrays
            ]
            arrays.append((entry.name, headers))
            del entry.array_record.arrays[:]
    records = record_dict_from_proto(proto, payload[:0])
    offset = 0
    for name, headers in arrays:
        record = records[name]
        assert isinstance(record, ArrayRecord)  # record_dict_from_proto made it from the entry
        for key, dtype, shape, nbytes in headers:
            where = f"Array {key!r} of record {name!r}"
            check_array_header(where, dtype, shape, nbytes)
            if key in record:
                raise CodecError(f"{where} appears twice; array names must be unique.")
            end = offset + nbytes
            if end > payload.nbytes:
                raise CodecError(f"{where} runs past the end of the frame: it is truncated.")
            record[key] = _array_view(dtype, shape, payload[offset:end])
            offset = end
    if offset != payload.nbytes:
        raise CodecError(f"A frame from a worker has {payload.nbytes - offset} trailing bytes.")
    return records


def _array_view(dtype: str, shape: tuple[int, ...], data: memoryview) -> Array:
    if isinstance(data.obj, bytes):
        return Array(dtype, shape, data)  # Array keeps views of bytes as they are
    # Array() copies any other buffer, which might change under it. This one is a read-only
    # mapping of a segment nobody writes again (see _shm), so the Array may keep the view.
    return Array.over_frozen_buffer(dtype, shape, data)


def _layout(
    head: struct.Struct, magic: bytes, fields: tuple[int, ...], frames: Sequence[Frame]
) -> list[Buffer]:
    parts: list[Buffer] = [b""]  # the head, packed once the frames are placed
    spans: list[int] = []
    position = head.size
    for frame in frames:
        pad = -(position + len(frame[0])) % _ALIGN  # array data on a 64-byte boundary
        if pad:
            parts.append(bytes(pad))
            position += pad
        length = sum(memoryview(part).nbytes for part in frame)
        spans += [position, length]
        parts += frame
        position += length
    parts[0] = head.pack(magic, *fields, *spans)
    return parts


def _unpack(head: struct.Struct, magic: bytes, view: memoryview) -> tuple[int, ...]:
    if view.nbytes < head.size or bytes(view[:4]) != magic:
        raise CodecError(f"A segment from a worker does not start with a {magic!r} head.")
    return tuple(head.unpack_from(view)[1:])


def _frames(view: memoryview, spans: Sequence[int]) -> list[memoryview]:
    frames = []
    for offset, length in zip(spans[::2], spans[1::2], strict=True):
        if offset + length > view.nbytes:
            raise CodecError("A segment from a worker is shorter than its head says.")
        frames.append(view[offset : offset + length])
    return frames


def _split(frame: memoryview, magic: bytes) -> tuple[memoryview, memoryview]:
    if frame.nbytes < _PREFIX.size:
        raise CodecError("A frame from a worker is truncated.")
    got, length = _PREFIX.unpack_from(frame)
    if got != magic or _PREFIX.size + length > frame.nbytes:
        raise CodecError(f"A frame from a worker is not a {magic!r} frame or is truncated.")
    return frame[_PREFIX.size : _PREFIX.size + length], frame[_PREFIX.size + length :]
