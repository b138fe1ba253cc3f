"""A :class:`~fedlab.Message` as a ``WireMessage`` header plus a content object, and back.

Both halves are made by the codec (:mod:`fedlab.wire.codec`): the header is
``encode_message`` of the message with its content left out (metadata only, or the error
of an error reply), the content is ``encode_record_dict`` of its RecordDict. Keeping the
content apart, named by its sha256, is what lets a model broadcast to N nodes be uploaded
and stored once: N small headers point at one object.

Examples
--------
>>> import numpy as np
>>> from fedlab.records import ArrayRecord, RecordDict
>>> msg = Message(RecordDict({"arrays": ArrayRecord([np.ones(3)])}), 7, "train")
>>> wire, blob = split_message(msg)
>>> wire.content.size == len(blob), len(wire.frame) < 200
(True, True)
>>> join_message(wire, blob).content["arrays"]["0"].numpy()
array([1., 1., 1.])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fedlab.deploy import proto as pb
from fedlab.deploy.transport.transfer import object_ref
from fedlab.errors import CodecError, TransferError
from fedlab.message import Message
from fedlab.records import ArrayRecord, RecordDict
from fedlab.wire.codec import (
    decode_message,
    decode_record_dict,
    encode_message,
    encode_record_dict,
)

__all__ = [
    "INLINE_BUDGET_BYTES",
    "INLINE_MAX_BYTES",
    "Inliner",
    "MAX_FRAME_BYTES",
    "decode_header",
    "inline_content",
    "join_message",
    "split_message",
    "split_messages",
]

#: A header frame holds metadata or an error reason, never data: this is plenty.
MAX_FRAME_BYTES = 1 * 2**20
#: Content up to this size travels inside its WireMessage (``inline_content``) instead of
#: as a separate object upload and download: a small model's message costs one RPC, not four.
INLINE_MAX_BYTES = 64 * 2**10
#: At most this much inline content in one response; later messages travel by reference.
INLINE_BUDGET_BYTES = 2 * 2**20


def split_message(message: Message, *, duration_s: float = 0.0) -> tuple[Any, bytes | None]:
    """Return ``(WireMessage, content blob)``; the blob is None for an error reply."""
    if message.has_error():
        return pb.WireMessage(frame=encode_message(message), duration_s=duration_s), None
    header = Message.from_parts(message.metadata, content=RecordDict())
    blob = encode_record_dict(message.content)
    wire = pb.WireMessage(frame=encode_message(header), duration_s=duration_s)
    wire.content.CopyFrom(object_ref(blob))
    return wire, blob


def split_messages(messages: Iterable[Message]) -> list[tuple[Any, bytes | None]]:
    """Split several messages, encoding (and hashing) each distinct content only once.

    A strategy broadcasting a model builds one RecordDict per node around the same arrays;
    encoding it once instead of N times saves N - 1 copies and sha256 passes of the model.
    Contents count as the same when they hold the very same Array objects (Arrays are
    immutable) and equal metrics and configs.
    """
    encoded: dict[tuple[Any, ...], tuple[bytes, Any]] = {}
    out = []
    for message in messages:
        if message.has_error():
            out.append(split_message(message))
            continue
        key = _fingerprint(message.content)
        if key not in encoded:
            blob = encode_record_dict(message.content)
            encoded[key] = (blob, object_ref(blob))
        blob, ref = encoded[key]
        header = Message.from_parts(message.metadata, content=RecordDict())
        wire = pb.WireMessage(frame=encode_message(header))
        wire.content.CopyFrom(ref)
        out.append((wire, blob))
    return out


def _fingerprint(content: RecordDict) -> tuple[Any, ...]:
    parts: list[Any] = []
    for name, record in content.items():
        if isinstance(record, ArrayRecord):
            # Identity is enough (and safe while the caller holds the messages): an Array
            # never changes.
            parts.append((name, tuple((key, id(array)) for key, array in record.items())))
        else:  # repr keeps 1, 1.0 and True apart, and -0.0 from 0.0
            parts.append((name, type(record).__name__, tuple((k, repr(v)) for k, v in record.items())))
    return tuple(parts)


def decode_header(wire: Any) -> Message:
    """Decode and check a WireMessage's header frame (metadata, or the error).

    Raises
    ------
    CodecError
        If the frame is not a valid header, or carries content inline (content travels
        as an object), or an error reply also points at content.
    """
    message = decode_message(wire.frame, max_size=MAX_FRAME_BYTES)
    if message.has_content() and len(message.content):
        raise CodecError(
            "The message header carries content inline; content travels as an object "
            "(see fedlab.deploy.transport.wire.split_message)."
        )
    if message.has_error() == wire.HasField("content"):
        raise CodecError(
            "A wire message must point at a content object unless it is an error reply, "
            "and an error reply must not."
        )
    return message


def join_message(wire: Any, blob: bytes | None) -> Message:
    """Rebuild the Message from its WireMessage and content blob (None for an error reply).

    Raises
    ------
    CodecError
        If the header or the content does not decode.
    TransferError
        If content is missing for a message that points at some.
    """
    header = decode_header(wire)
    if header.has_error():
        return header
    if blob is None:
        raise TransferError(
            f"Message {header.metadata.message_id} points at content object "
            f"{wire.content.digest[:12]} but none was given."
        )
    return Message.from_parts(header.metadata, content=decode_record_dict(blob))


def inline_content(wire: Any) -> bytes | None:
    """The content carried inside ``wire``, checked against its ref; None if it has none.

    Raises
    ------
    TransferError
        If the inline bytes are not the object the message names (size or sha256 differ),
        or are above :data:`INLINE_MAX_BYTES`: the sender is broken or lying.
    """
    data = wire.inline_content
    if not data:
        return None
    if not wire.HasField("content") or len(data) > INLINE_MAX_BYTES:
        raise TransferError(
            f"A message carries {len(data)} bytes of inline content without a content ref, or "
            f"above the {INLINE_MAX_BYTES} bytes allowed inline; it was not used."
        )
    ref = object_ref(data)
    if ref.digest != wire.content.digest or ref.size != wire.content.size:
        raise TransferError(
            f"The inline content of a message is {ref.size} bytes with sha256 {ref.digest[:12]}, "
            f"but the message names {wire.content.digest[:12]} of {wire.content.size} bytes; "
            "it was not used."
        )
    return bytes(data)


class Inliner:
    """Puts small contents inside the WireMessages of one response, up to a byte budget.

    ``read(digest)`` returns a stored object's bytes. Contents above :data:`INLINE_MAX_BYTES`,
    and every content once ``budget`` is spent, keep travelling by reference.
    """

    def __init__(self, read: Callable[[str], bytes | None], budget: int = INLINE_BUDGET_BYTES) -> None:
        self._read = read
        self.budget = budget

    def fill(self, wire: Any) -> Any:
        """Inline ``wire``'s content if it is small and the budget allows; return ``wire``."""
        if not wire.HasField("content"):
            return wire
        size = wire.content.size
        if 0 < size <= min(INLINE_MAX_BYTES, self.budget):
            data = self._read(wire.content.digest)
            if data is not None and len(data) == size:
                wire.inline_content = data
                self.budget -= size
        return wire
