"""Flower's ``Message`` and ``Context``: fedlab's, built with Flower's signatures.

A server instruction is ``Message(content, dst_node_id, message_type, group_id=...)``
(also all as keywords); a reply is ``Message(content, reply_to=msg)`` or
``Message(error, reply_to=msg)``. Both are fedlab Messages, so every runtime carries
them as they are.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from fedlab.compat.flower.error import FlowerCompatError, unknown_arguments
from fedlab.compat.flower.records import RecordDict, as_flower_content, as_flower_record
from fedlab.context import Context as _Context
from fedlab.context import UserConfig
from fedlab.message import DEFAULT_TTL, Error
from fedlab.message import Message as _Message
from fedlab.records import RecordDict as _RecordDict

__all__ = ["Context", "Message", "as_flower_context", "as_flower_message"]

_ARGUMENTS = ["content", "dst_node_id", "error", "group_id", "message_type", "reply_to", "ttl"]


class Message(_Message):
    """A fedlab Message built as Flower builds one.

    Examples
    --------
    >>> from fedlab.compat.flower.records import MetricRecord
    >>> ins = Message(RecordDict(), dst_node_id=3, message_type="train", group_id="1")
    >>> rep = Message(RecordDict({"metrics": MetricRecord({"num-examples": 5})}), reply_to=ins)
    >>> rep.metadata.reply_to_message_id == ins.metadata.message_id, rep.metadata.src_node_id
    (True, 3)
    """

    # Content set by the app after the message was made (Flower's ``msg.content = ...``).
    __slots__ = ("_set_content",)

    def __new__(cls, *args: Any, **kwargs: Any) -> Message:  # noqa: PYI034 (built by _build)
        if not args and not kwargs:  # from_parts making an empty one to fill
            return super().__new__(cls)
        return cls._build(*args, **kwargs)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Built by ``__new__``; see the class docstring for the forms."""

    @classmethod
    def _build(
        cls,
        *args: Any,
        content: _RecordDict | None = None,
        error: Error | None = None,
        dst_node_id: int | None = None,
        message_type: str | None = None,
        group_id: str | None = None,
        ttl: float | None = None,
        reply_to: _Message | None = None,
        **unknown: Any,
    ) -> Message:
        unknown_arguments(
            "Message",
            unknown,
            _ARGUMENTS,
            dict.fromkeys(
                ["metadata", "dst_task_id"],
                "build instructions with Message(content, dst_node_id, message_type) or "
                "grid.create_message(...), and replies with Message(content, reply_to=msg).",
            ),
        )
        if len(args) > 3:
            raise FlowerCompatError(
                f"Message() takes at most 3 positional values, got {len(args)}."
            )
        if args:
            first = args[0]
            if isinstance(first, Error):
                error = first
            else:
                content = first
        if len(args) > 1:
            dst_node_id = args[1]
        if len(args) > 2:
            message_type = args[2]
        if (content is None) == (error is None):
            raise FlowerCompatError(
                "Message() needs exactly one of content (a RecordDict) or error (an Error)."
            )
        if reply_to is not None:
            if dst_node_id is not None or message_type is not None or group_id is not None:
                raise FlowerCompatError(
                    "A reply takes its destination, type and group from reply_to; write "
                    "Message(content, reply_to=msg) without dst_node_id/message_type/group_id."
                )
            base = reply_to.reply(error if error is not None else _checked_content(content))
            if ttl is not None:
                base = base.with_metadata(ttl=min(float(ttl), base.metadata.ttl))
            return cast(
                Message,
                cls.from_parts(base.metadata, base.content if error is None else None, error),
            )
        if error is not None:
            raise FlowerCompatError(
                "An error Message is a reply: write Message(error, reply_to=msg)."
            )
        if dst_node_id is None or message_type is None:
            raise FlowerCompatError(
                "An instruction needs dst_node_id and message_type: "
                "Message(content, dst_node_id=node_id, message_type=MessageType.TRAIN), "
                "or a reply needs reply_to=msg."
            )
        base = _Message(
            _checked_content(content),
            dst_node_id,
            message_type,
            group_id="" if group_id is None else str(group_id),
            ttl=DEFAULT_TTL if ttl is None else ttl,
        )
        return cast(Message, cls.from_parts(base.metadata, content=base.content))

    @property
    def content(self) -> RecordDict:
        """The RecordDict this message carries (raises if it carries an error).

        It may be replaced, as in Flower: ``msg.content = RecordDict({...})``.
        """
        replaced: RecordDict | None = getattr(self, "_set_content", None)
        if replaced is not None:
            return replaced
        return super().content  # type: ignore[return-value]  # made one of ours when built

    @content.setter
    def content(self, value: RecordDict) -> None:
        if self.has_error():
            raise FlowerCompatError(
                "This message carries an error; it cannot be given content. Build a reply "
                "instead: Message(content, reply_to=instruction)."
            )
        self._set_content = _checked_content(value)

    def with_metadata(self, **changes: object) -> Message:
        """Return this message with some metadata fields replaced (content is shared)."""
        metadata = dataclasses.replace(self.metadata, **changes)  # type: ignore[arg-type]
        content = self.content if self.has_content() else None
        return cast(Message, Message.from_parts(metadata, content, self.error))

    def with_content(self, content: _RecordDict) -> Message:
        """Return this message carrying ``content`` instead, same metadata."""
        return cast(Message, Message.from_parts(self.metadata, content=_checked_content(content)))

    def create_reply(self, content: _RecordDict, ttl: float | None = None) -> Message:
        """Flower's older form of ``Message(content, reply_to=self)``."""
        return Message(content, reply_to=self, ttl=ttl)

    def create_error_reply(self, error: Error, ttl: float | None = None) -> Message:
        """Flower's older form of ``Message(error, reply_to=self)``."""
        return Message(error, reply_to=self, ttl=ttl)


def _checked_content(content: object) -> RecordDict:
    if not isinstance(content, _RecordDict):
        raise FlowerCompatError(
            f"Message content must be a RecordDict, got {type(content).__name__}; "
            "wrap records: RecordDict({'arrays': ArrayRecord(...), 'metrics': MetricRecord(...)})."
        )
    return as_flower_content(content)


def as_flower_message(message: _Message) -> Message:
    """Return ``message`` as this layer's Message, its records converted (arrays shared)."""
    if isinstance(message, Message) and (
        message.has_error() or _is_flower_content(message.content)
    ):
        return message
    content = as_flower_content(message.content) if message.has_content() else None
    return Message.from_parts(message.metadata, content, message.error)  # type: ignore[return-value]


def _is_flower_content(content: _RecordDict) -> bool:
    return as_flower_content(content) is content


class Context(_Context):
    """Flower's Context: ``Context(run_id, node_id, node_config, state, run_config)``."""

    def __init__(
        self,
        run_id: int,
        node_id: int,
        node_config: UserConfig,
        state: _RecordDict,
        run_config: UserConfig,
        series_id: int = 0,
    ) -> None:
        super().__init__(
            run_id=run_id,
            node_id=node_id,
            node_config=node_config,
            run_config=run_config,
            state=state,
        )
        self.series_id = series_id


def as_flower_context(context: _Context) -> _Context:
    """Turn the records kept in ``context.state`` into this layer's, in place; return it.

    The same state object stays with the node, so what the app writes is kept.
    """
    state = context.state
    for name in list(state):
        record = state[name]
        converted = as_flower_record(record)
        if converted is not record:
            state[name] = converted
    return context
