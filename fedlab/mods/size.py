"""Size Mods: report how many bytes a client receives and sends, and refuse too much.

Sizes are those of the wire codec (:func:`fedlab.wire.codec.encode_message`), the bytes
a deployment sends, measured without copying the arrays:

:class:`MessageSizeMod` (``message_size_mod``)
    ``"message-bytes-in"``: the encoded size of the instruction; ``"message-bytes-out"``:
    the encoded size of the reply the handler (and the Mods listed after this one)
    returned, before this Mod added its own metrics.
:class:`ArraysSizeMod` (``arrays_size_mod``)
    ``"arrays-bytes-in"``/``"arrays-bytes-out"``: the bytes of all arrays of all
    ArrayRecords, the array section of the encoded frame; ``"arrays-elements-in"``/
    ``"arrays-elements-out"``: how many numbers those arrays hold.

The numbers go into the reply's MetricRecord ``content["metrics"]`` (created if the
handler sent none), for every message type. They therefore reach the server with the
reply and appear in each client's ``ClientReplied`` event, in
``history.client_metric("message-bytes-in")`` and on the dashboard; no other event is
emitted. An error reply passes through unchanged.

With ``limit`` (bytes), an instruction above it is refused before the handler runs: the
reply is an error (``ErrorCode.MOD_FAILED_PRECONDITION``) that names the size and the
limit.

Examples
--------
>>> import numpy as np
>>> from fedlab import ClientApp, Context, Message, RecordDict
>>> from fedlab.records import ArrayRecord
>>> app = ClientApp(mods=[arrays_size_mod])
>>> @app.train()
... def train(msg, ctx):
...     return msg.reply(RecordDict({"arrays": msg.content["arrays"]}))
>>> ins = Message(RecordDict({"arrays": ArrayRecord([np.zeros(10, np.float32)])}), 1, "train")
>>> metrics = app(ins, Context(0, 1)).content["metrics"]
>>> metrics["arrays-bytes-in"], metrics["arrays-elements-out"]
(40, 10)
"""

from __future__ import annotations

import math

from fedlab.client.mod import CallNext
from fedlab.context import Context
from fedlab.errors import ConfigurationError
from fedlab.message import Message
from fedlab.mods._update import Refusal, refuse, with_metrics

__all__ = ["ArraysSizeMod", "MessageSizeMod", "arrays_size_mod", "message_size_mod"]


class _SizeMod:
    _what = ""

    def __init__(self, limit: int | None = None) -> None:
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise ConfigurationError(
                f"limit must be a positive number of bytes or None (no limit), got {limit!r}."
            )
        self.limit = limit

    def __call__(self, msg: Message, ctx: Context, call_next: CallNext) -> Message:
        """Measure the instruction, refuse it above ``limit``, measure and annotate the reply."""
        if msg.has_error():
            return call_next(msg, ctx)
        incoming = self._measure(msg)
        size = next(iter(incoming.values()))
        if self.limit is not None and size > self.limit:
            return refuse(
                msg,
                f"{type(self).__name__}: the {msg.metadata.message_type!r} instruction's "
                f"{self._what} are {size} bytes, above this client's limit of {self.limit} "
                "bytes; send a smaller model or raise the client's limit.",
            )
        reply = call_next(msg, ctx)
        if reply.has_error():
            return reply
        outgoing = self._measure(reply)
        metrics = {f"{key}-in": value for key, value in incoming.items()}
        metrics.update({f"{key}-out": value for key, value in outgoing.items()})
        try:
            return reply.with_content(with_metrics(reply.content, metrics))
        except Refusal as refusal:
            return refuse(msg, f"{type(self).__name__}: {refusal}")

    def _measure(self, msg: Message) -> dict[str, int]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(limit={self.limit!r})"


class MessageSizeMod(_SizeMod):
    """Report the encoded size of each instruction and reply; optionally refuse large ones.

    Parameters
    ----------
    limit
        Refuse instructions whose encoded size exceeds this many bytes (None: no limit).

    Raises
    ------
    ConfigurationError
        If ``limit`` is not a positive int or None.
    """

    _what = "encoded size"

    def _measure(self, msg: Message) -> dict[str, int]:
        from fedlab.wire.codec import message_parts  # protobuf only when a message is measured

        return {"message-bytes": sum(memoryview(part).nbytes for part in message_parts(msg))}


class ArraysSizeMod(_SizeMod):
    """Report the bytes and elements of each message's arrays; optionally refuse large ones.

    Parameters
    ----------
    limit
        Refuse instructions whose arrays hold more than this many bytes (None: no limit).

    Raises
    ------
    ConfigurationError
        If ``limit`` is not a positive int or None.
    """

    _what = "arrays"

    def _measure(self, msg: Message) -> dict[str, int]:
        arrays = [a for record in msg.content.array_records.values() for a in record.values()]
        return {
            "arrays-bytes": sum(a.nbytes for a in arrays),
            "arrays-elements": sum(math.prod(a.shape) for a in arrays),
        }


_MESSAGE = MessageSizeMod()
_ARRAYS = ArraysSizeMod()


def message_size_mod(msg: Message, ctx: Context, call_next: CallNext) -> Message:
    """Flower's name for ``MessageSizeMod()``: report encoded message sizes, no limit."""
    return _MESSAGE(msg, ctx, call_next)


def arrays_size_mod(msg: Message, ctx: Context, call_next: CallNext) -> Message:
    """Flower's name for ``ArraysSizeMod()``: report array bytes and elements, no limit."""
    return _ARRAYS(msg, ctx, call_next)
