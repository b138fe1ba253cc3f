"""`Message`: what the server and the clients send each other, with its `Metadata`."""

from __future__ import annotations

import dataclasses
import re
import time
import uuid
from dataclasses import dataclass
from enum import IntEnum

from fedlab.errors import MessageError
from fedlab.records import RecordDict

__all__ = [
    "DEFAULT_TTL",
    "Error",
    "ErrorCode",
    "Message",
    "MessageType",
    "Metadata",
    "validate_message_type",
]

#: Default time-to-live of an instruction, in seconds (12 hours).
DEFAULT_TTL = 43200.0


class MessageType:
    """The three message categories. A named action is ``"<category>.<action>"``."""

    TRAIN = "train"
    EVALUATE = "evaluate"
    QUERY = "query"


_CATEGORIES = (MessageType.TRAIN, MessageType.EVALUATE, MessageType.QUERY)
_ACTION = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


def validate_message_type(message_type: str) -> str:
    """Return ``message_type`` if it is ``train``/``evaluate``/``query`` or ``<one>.<action>``.

    Raises
    ------
    MessageError
        If the type has another category or an action that is not an identifier.
    """
    if not isinstance(message_type, str):
        raise MessageError(f"message_type must be a str, got {type(message_type).__name__}.")
    category, _, action = message_type.partition(".")
    if category not in _CATEGORIES or ("." in message_type and not _ACTION.fullmatch(action)):
        raise MessageError(
            f"message_type {message_type!r} is not valid: use 'train', 'evaluate' or 'query', "
            "optionally followed by '.<action>' such as 'train.finetune'."
        )
    return message_type


class ErrorCode(IntEnum):
    """Why a reply carries an :class:`Error` instead of content.

    ``REPLY_REJECTED`` is set on the server, not by a client: the client's training reply
    arrived but could not be aggregated (arrays that differ from the model it was sent,
    NaN or infinite values, a missing weight); its reason says what to fix.
    """

    UNKNOWN = 0
    CLIENT_APP_RAISED_EXCEPTION = 2
    MESSAGE_UNAVAILABLE = 3
    REPLY_MESSAGE_UNAVAILABLE = 4
    NODE_UNAVAILABLE = 5
    MOD_FAILED_PRECONDITION = 6
    TIMEOUT = 7
    CLIENT_APP_CRASHED = 8
    UNKNOWN_MESSAGE_TYPE = 9
    INVALID_REPLY = 10
    REPLY_REJECTED = 11


@dataclass(frozen=True)
class Error:
    """An error reply: a code from :class:`ErrorCode` and a human-readable reason.

    For an exception raised in a ClientApp, ``reason`` holds the exception type and
    message on its first line, then the traceback text.
    """

    code: int
    reason: str = ""


@dataclass(frozen=True)
class Metadata:
    """Who sent a message to whom, about what, and for how long it is valid."""

    run_id: int
    message_id: str
    src_node_id: int
    dst_node_id: int
    reply_to_message_id: str
    group_id: str
    message_type: str
    ttl: float
    created_at: float

    @property
    def round(self) -> int:
        """The server round this message belongs to (``group_id`` as int), 0 if none."""
        return int(self.group_id) if self.group_id.isdecimal() else 0


#: The node id of the server side (the ServerApp) in message metadata.
SERVER_NODE_ID = 0


class Message:
    """A message: :class:`Metadata` plus either content (a RecordDict) or an :class:`Error`.

    The server builds instructions with ``Message(content, dst_node_id, message_type)``;
    a client answers with ``msg.reply(content)``.

    Examples
    --------
    >>> from fedlab.records import MetricRecord
    >>> ins = Message(RecordDict(), dst_node_id=7, message_type="train", group_id="1")
    >>> rep = ins.reply(RecordDict({"metrics": MetricRecord({"loss": 0.1})}))
    >>> rep.metadata.reply_to_message_id == ins.metadata.message_id, rep.metadata.src_node_id
    (True, 7)
    """

    __slots__ = ("_content", "_error", "_metadata")

    def __init__(
        self,
        content: RecordDict,
        dst_node_id: int,
        message_type: str,
        *,
        group_id: str = "",
        ttl: float = DEFAULT_TTL,
        run_id: int = 0,
    ) -> None:
        if not isinstance(content, RecordDict):
            raise MessageError(f"Message content must be a RecordDict, got {type(content).__name__}.")
        if (
            not isinstance(dst_node_id, int)
            or isinstance(dst_node_id, bool)
            or not 0 <= dst_node_id < 2**64
        ):
            raise MessageError(
                f"dst_node_id must be a node id (an int from 0 to 2**64-1), got {dst_node_id!r}; "
                "use an id from grid.get_node_ids()."
            )
        if not ttl > 0:
            raise MessageError(f"ttl must be a positive number of seconds, got {ttl!r}.")
        self._metadata = Metadata(
            run_id=run_id,
            message_id=uuid.uuid4().hex,
            src_node_id=SERVER_NODE_ID,
            dst_node_id=dst_node_id,
            reply_to_message_id="",
            group_id=str(group_id),
            message_type=validate_message_type(message_type),
            ttl=float(ttl),
            created_at=time.time(),
        )
        self._content: RecordDict | None = content
        self._error: Error | None = None

    @classmethod
    def from_parts(
        cls, metadata: Metadata, content: RecordDict | None = None, error: Error | None = None
    ) -> Message:
        """Assemble a message from its parts (used by the codec and the runtimes)."""
        if (content is None) == (error is None):
            raise MessageError("A Message holds exactly one of content or error.")
        msg = cls.__new__(cls)
        msg._metadata = metadata
        msg._content = content
        msg._error = error
        return msg

    @property
    def metadata(self) -> Metadata:
        """The message's :class:`Metadata`."""
        return self._metadata

    @property
    def content(self) -> RecordDict:
        """The RecordDict this message carries.

        Raises
        ------
        MessageError
            If the message carries an error instead; check :meth:`has_error` first.
        """
        if self._content is None:
            assert self._error is not None
            raise MessageError(
                f"This message carries an error, not content (code {self._error.code}: "
                f"{self._error.reason.splitlines()[0] if self._error.reason else ''}). "
                "Check msg.has_error() before reading msg.content."
            )
        return self._content

    @property
    def error(self) -> Error | None:
        """The :class:`Error` this message carries, or None."""
        return self._error

    def has_error(self) -> bool:
        """Return True if this message carries an :class:`Error` instead of content."""
        return self._error is not None

    def has_content(self) -> bool:
        """Return True if this message carries content."""
        return self._content is not None

    def reply(self, content: RecordDict | Error) -> Message:
        """Build the reply to this message, carrying ``content`` or an :class:`Error`.

        The reply goes back to the sender, keeps the type and group, and lives at most
        as long as what remains of this message's TTL.
        """
        if not isinstance(content, RecordDict | Error):
            raise MessageError(
                f"msg.reply() takes a RecordDict or an Error, got {type(content).__name__}. "
                "Wrap records like this: msg.reply(RecordDict({'metrics': MetricRecord({...})}))."
            )
        now = time.time()
        md = self._metadata
        remaining = max(md.created_at + md.ttl - now, 1e-3)
        metadata = Metadata(
            run_id=md.run_id,
            message_id=uuid.uuid4().hex,
            src_node_id=md.dst_node_id,
            dst_node_id=md.src_node_id,
            reply_to_message_id=md.message_id,
            group_id=md.group_id,
            message_type=md.message_type,
            ttl=remaining,
            created_at=now,
        )
        if isinstance(content, Error):
            return Message.from_parts(metadata, error=content)
        return Message.from_parts(metadata, content=content)

    def with_content(self, content: RecordDict) -> Message:
        """Return this message carrying ``content`` instead, same metadata (for Mods).

        A Mod that rewrites what the handler sees, or what the server gets back, uses this:
        the message keeps its id, so the handler's ``msg.reply(...)`` still answers it.
        """
        if not isinstance(content, RecordDict):
            raise MessageError(f"with_content() takes a RecordDict, got {type(content).__name__}.")
        return Message.from_parts(self._metadata, content=content)

    def with_metadata(self, **changes: object) -> Message:
        """Return this message with some metadata fields replaced (content is shared)."""
        metadata = dataclasses.replace(self._metadata, **changes)  # type: ignore[arg-type]
        return Message.from_parts(metadata, self._content, self._error)

    def __repr__(self) -> str:
        md = self._metadata
        body = f"error={self._error!r}" if self._error else f"content={list(self.content)}"
        return (
            f"Message(type={md.message_type!r}, {md.src_node_id}->{md.dst_node_id}, "
            f"group={md.group_id!r}, {body})"
        )
