"""A client call as bytes: what the grid and a worker process write into a segment.

A call crosses as one shared-memory segment (see ``_shm``) holding a head and then frames
of fedlab's codec (``fedlab.wire.codec``)::

    request   head "FLPQ" run_id node_id | Message frame | state frame | config frame
    reply     head "FLPA"                | Message frame | state frame

The head gives each frame's offset and length. The Message frames (magic ``FLM1``) and
RecordDict frames (``FLR1``) are exactly what :func:`~fedlab.wire.codec.encode_message`
and :func:`~fedlab.wire.codec.encode_record_dict` make, taken as the codec's pieces
(``message_parts``, ``record_dict_parts``) so that array buffers are written straight into
the segment instead of being joined into one bytes object first. The config frame holds the Context's
``node_config`` and ``run_config`` as two ConfigRecords. Each frame starts where its
array data falls on a 64-byte boundary, so arrays read in place are aligned.

Reading keeps every array as a slice of the segment's view, not a copy. That is safe
because the view is of immutable bytes: a bytes object or a read-only mapping of a
segment that nobody writes again (``_shm.open_segment``), as the codec's ``frozen=True``
promises. The one exception is the state the grid keeps for a node: it lives for the
whole run, so :func:`decode_reply` copies it out rather than pin the reply's segment (and
a file descriptor) per node.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from fedlab.context import Context
from fedlab.errors import CodecError
from fedlab.message import Message
from fedlab.records import ConfigRecord, RecordDict
from fedlab.simulation._shm import Buffer
from fedlab.wire.codec import decode_message, decode_record_dict
from fedlab.wire.codec import message_parts as message_frame
from fedlab.wire.codec import record_dict_parts as record_dict_frame

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

_REQUEST = struct.Struct("<4s4xQQ6Q")  # magic, run id, node id, 3 x (offset, length)
_REPLY = struct.Struct("<4s4x4Q")  # magic, 2 x (offset, length)
_REQUEST_MAGIC = b"FLPQ"
_REPLY_MAGIC = b"FLPA"
_ALIGN = 64
_NODE_CONFIG, _RUN_CONFIG = "node-config", "run-config"

# A codec frame: the prefix and header as one bytes object, then the array buffers.
Frame = list[bytes | memoryview]


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
    return decode_message(frame, max_size=_whole(frame), frozen=True)


def read_record_dict(frame: memoryview) -> RecordDict:
    """Decode a RecordDict frame; its arrays are slices of ``frame``, which must be immutable."""
    return decode_record_dict(frame, max_size=_whole(frame), frozen=True)


def _whole(frame: memoryview) -> int:
    # A frame of our own worker is as large as the client made it: no cap beyond its size.
    return max(frame.nbytes, 1)


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
