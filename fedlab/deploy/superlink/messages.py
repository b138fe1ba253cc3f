"""Instructions and replies at the SuperLink: delivery, exactly-once replies, and failures.

- An instruction is handed to its node once (``delivered_at``), and never after it expired
  (TTL) or after its run finished.
- Each instruction gets exactly one reply (a unique index enforces it). The node's reply
  is committed before the node is told it was accepted. If the node went offline first,
  the SuperLink writes a ``NODE_UNAVAILABLE`` reply in its place; if the instruction
  expired unanswered, a ``REPLY_MESSAGE_UNAVAILABLE`` one. The node's late reply is then
  refused, so the ServerApp never sees two answers to one question.
- Replies stay until the ServerApp forgets them (after it received them, or when it gave
  up waiting), so a reply lost on the way to the ServerApp can be pulled again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fedlab.deploy import proto as pb
from fedlab.deploy.superlink._db import Database, from_sql_id, to_sql_id
from fedlab.deploy.superlink.nodes import Nodes
from fedlab.message import Error, ErrorCode, Message
from fedlab.wire.codec import decode_message, encode_message

__all__ = ["Messages", "StoredMessage", "instructions_key", "replies_key"]

_COLUMNS = ("message_id, kind, run_id, dst_node_id, reply_to, frame, content_digest, "
            "content_size, duration_s, expires_at")  # fmt: skip


@dataclass(frozen=True)
class StoredMessage:
    """A message row: its header frame, content ref and bookkeeping."""

    message_id: str
    kind: str
    run_id: int
    dst_node_id: int
    reply_to: str
    frame: bytes
    content_digest: str
    content_size: int
    duration_s: float
    expires_at: float

    def to_wire(self) -> Any:
        """Return the ``WireMessage`` that carries this message."""
        wire = pb.WireMessage(frame=self.frame, duration_s=self.duration_s)
        if self.content_digest:
            wire.content.digest = self.content_digest
            wire.content.size = self.content_size
        return wire


def instructions_key(node_id: int) -> tuple[str, int]:
    """The :class:`Database` wait key a node's long poll for instructions sleeps on."""
    return ("instructions", node_id)


def replies_key(run_id: int) -> tuple[str, int]:
    """The :class:`Database` wait key a ServerApp's wait for its run's replies sleeps on."""
    return ("replies", run_id)


def _stored(row: tuple[Any, ...]) -> StoredMessage:
    fields = list(row)
    fields[3] = from_sql_id(fields[3])
    fields[5] = bytes(fields[5])
    return StoredMessage(*fields)


class Messages:
    """The message table: instructions from ServerApps, replies from nodes."""

    def __init__(self, db: Database, nodes: Nodes) -> None:
        self._db = db
        self._nodes = nodes

    def push_instructions(self, run_id: int, items: Sequence[tuple[Message, Any]]) -> list[str]:
        """Store instructions (header, WireMessage) for ``run_id``; return their ids.

        Pushing the same message id again is a no-op, so a retried push is harmless. An
        instruction for a node that is not online is answered with NODE_UNAVAILABLE at once.
        """
        now = self._db.clock()
        ids = []
        with self._db.transaction() as conn:
            for header, wire in items:
                md = header.metadata
                cursor = conn.execute(
                    f"INSERT OR IGNORE INTO messages ({_COLUMNS}, created_at) "
                    "VALUES (?, 'instruction', ?, ?, '', ?, ?, ?, 0, ?, ?)",
                    (md.message_id, run_id, to_sql_id(md.dst_node_id), wire.frame,
                     wire.content.digest, wire.content.size, now + md.ttl, now),
                )  # fmt: skip
                ids.append(md.message_id)
                if cursor.rowcount:
                    self._db.signal(instructions_key(md.dst_node_id))
                if cursor.rowcount and not self._nodes.is_online(md.dst_node_id):
                    known = self._nodes.get(md.dst_node_id) is not None
                    reason = (
                        f"Node {md.dst_node_id} is offline (it stopped sending heartbeats)."
                        if known
                        else f"Node {md.dst_node_id} is not connected to this SuperLink; "
                        "address messages to ids from grid.get_node_ids()."
                    )
                    self._answer(conn, header, ErrorCode.NODE_UNAVAILABLE, reason, now)
        return ids

    def pull_instructions(self, node_id: int, limit: int) -> list[StoredMessage]:
        """Hand out up to ``limit`` undelivered, unexpired instructions for ``node_id``."""
        now = self._db.clock()
        with self._db.transaction() as conn:
            rows = conn.execute(
                f"SELECT {', '.join('m.' + c for c in _COLUMNS.split(', '))} FROM messages m "
                "JOIN runs r ON r.run_id = m.run_id "
                "WHERE m.kind = 'instruction' AND m.dst_node_id = ? AND m.delivered_at IS NULL "
                "AND m.expires_at > ? AND r.status IN ('running', 'stopping') "
                "AND NOT EXISTS (SELECT 1 FROM messages a WHERE a.kind = 'reply' "
                "AND a.reply_to = m.message_id) "
                "ORDER BY m.created_at LIMIT ?",
                (to_sql_id(node_id), now, limit),
            ).fetchall()
            conn.executemany(
                "UPDATE messages SET delivered_at = ? WHERE message_id = ?",
                [(now, row[0]) for row in rows],
            )
        return [_stored(row) for row in rows]

    def redeliver(self, node_id: int) -> int:
        """Make the instructions ``node_id`` was given but never answered deliverable again.

        For a node that registered again after a restart: what it was working on died with
        its old process. Expired instructions, and those already answered (by the node, or
        by the SuperLink in its place), stay as they are; one reply per instruction still
        holds, so if the old process is alive after all, the first of the two answers wins.
        Return how many instructions are pending again.
        """
        with self._db.transaction() as conn:
            self._db.signal(instructions_key(node_id))
            return conn.execute(
                "UPDATE messages SET delivered_at = NULL WHERE kind = 'instruction' "
                "AND dst_node_id = ? AND delivered_at IS NOT NULL AND expires_at > ? "
                "AND NOT EXISTS (SELECT 1 FROM messages a WHERE a.kind = 'reply' "
                "AND a.reply_to = messages.message_id)",
                (to_sql_id(node_id), self._db.clock()),
            ).rowcount

    def push_reply(self, node_id: int, header: Message, wire: Any) -> tuple[bool, str]:
        """Commit a node's reply; return (accepted, why not). A refusal is final.

        Pushing the very same reply again (its acknowledgement was lost) is accepted again.
        """
        md = header.metadata
        now = self._db.clock()
        with self._db.transaction() as conn:
            found = conn.execute(
                "SELECT run_id, dst_node_id, delivered_at FROM messages "
                "WHERE message_id = ? AND kind = 'instruction'",
                (md.reply_to_message_id,),
            ).fetchone()
            if found is None:
                return False, (
                    f"instruction {md.reply_to_message_id} is unknown: it was abandoned by the "
                    "ServerApp (timeout), its run finished, or it never existed"
                )
            run_id, dst, delivered_at = found
            if from_sql_id(dst) != node_id or md.src_node_id != node_id or delivered_at is None:
                return False, f"instruction {md.reply_to_message_id} was not delivered to node {node_id}"
            if md.run_id != run_id:
                return False, f"the reply names run {md.run_id}, its instruction belongs to run {run_id}"
            existing = conn.execute(
                "SELECT message_id FROM messages WHERE kind = 'reply' AND reply_to = ?",
                (md.reply_to_message_id,),
            ).fetchone()
            if existing is not None:
                if existing[0] == md.message_id:
                    return True, ""
                return False, f"instruction {md.reply_to_message_id} was already answered"
            try:
                conn.execute(
                    f"INSERT INTO messages ({_COLUMNS}, created_at) "
                    "VALUES (?, 'reply', ?, 0, ?, ?, ?, ?, ?, ?, ?)",
                    (md.message_id, run_id, md.reply_to_message_id, wire.frame, wire.content.digest,
                     wire.content.size, wire.duration_s, now + md.ttl, now),
                )  # fmt: skip
            except sqlite3.IntegrityError:
                return False, f"message id {md.message_id} is already taken"
            self._db.signal(replies_key(run_id))
        return True, ""

    def replies(self, run_id: int, message_ids: Iterable[str]) -> list[StoredMessage]:
        """Return the replies to ``message_ids`` that exist or can be decided now.

        An unanswered instruction whose node went offline gets a NODE_UNAVAILABLE reply, an
        expired one a REPLY_MESSAGE_UNAVAILABLE reply; ids that are unknown are skipped.
        """
        now = self._db.clock()
        out = []
        with self._db.transaction() as conn:
            for message_id in dict.fromkeys(message_ids):
                instruction = conn.execute(
                    "SELECT dst_node_id, expires_at, frame FROM messages "
                    "WHERE message_id = ? AND kind = 'instruction' AND run_id = ?",
                    (message_id, run_id),
                ).fetchone()
                if instruction is None:
                    continue
                reply = self._reply(conn, message_id)
                if reply is None:
                    dst, expires_at, frame = from_sql_id(instruction[0]), instruction[1], instruction[2]
                    if not self._nodes.is_online(dst):
                        reason = f"Node {dst} went offline (no heartbeat) before it replied."
                        code = ErrorCode.NODE_UNAVAILABLE
                    elif expires_at <= now:
                        reason = f"Node {dst} did not reply before the instruction's TTL ran out."
                        code = ErrorCode.REPLY_MESSAGE_UNAVAILABLE
                    else:
                        continue
                    self._answer(conn, decode_message(bytes(frame)), code, reason, now)
                    reply = self._reply(conn, message_id)
                if reply is not None:
                    out.append(reply)
        return out

    def forget(self, run_id: int, message_ids: Iterable[str]) -> None:
        """Delete instructions and their replies (received, or no longer awaited)."""
        if not 0 < run_id < 2**63:  # no such run in SQLite's int64 range: nothing to delete
            return
        ids = list(dict.fromkeys(message_ids))
        with self._db.transaction() as conn:
            for start in range(0, len(ids), 500):
                batch = ids[start : start + 500]
                marks = ", ".join("?" * len(batch))
                conn.execute(
                    f"DELETE FROM messages WHERE run_id = ? AND "
                    f"(message_id IN ({marks}) OR reply_to IN ({marks}))",
                    (run_id, *batch, *batch),
                )

    def node_may_read(self, node_id: int, digest: str) -> bool:
        """True if an instruction addressed to ``node_id`` carries object ``digest``."""
        return bool(self._db.query(
            "SELECT 1 FROM messages WHERE kind = 'instruction' AND dst_node_id = ? "
            "AND content_digest = ? LIMIT 1",
            (to_sql_id(node_id), digest),
        ))  # fmt: skip

    def node_in_run(self, node_id: int, run_id: int) -> bool:
        """True if an instruction of ``run_id`` was addressed to ``node_id``."""
        return bool(self._db.query(
            "SELECT 1 FROM messages WHERE kind = 'instruction' AND dst_node_id = ? AND run_id = ? LIMIT 1",
            (to_sql_id(node_id), run_id),
        ))  # fmt: skip

    def largest_open_instruction(self, node_id: int) -> int:
        """The largest instruction content (bytes) of the runs ``node_id`` is working on now.

        A run counts while the node holds one of its instructions, delivered and not yet
        answered; 0 if there is none. Upload caps per run derive from this.
        """
        rows = self._db.query(
            "SELECT MAX(i.content_size) FROM messages i WHERE i.kind = 'instruction' AND i.run_id IN "
            "(SELECT m.run_id FROM messages m WHERE m.kind = 'instruction' AND m.dst_node_id = ? "
            "AND m.delivered_at IS NOT NULL AND m.expires_at > ? AND NOT EXISTS "
            "(SELECT 1 FROM messages a WHERE a.kind = 'reply' AND a.reply_to = m.message_id))",
            (to_sql_id(node_id), self._db.clock()),
        )
        return int(rows[0][0] or 0) if rows else 0

    def referenced_digests(self) -> set[str]:
        """The content objects that messages still refer to."""
        rows = self._db.query("SELECT DISTINCT content_digest FROM messages WHERE content_digest != ''")
        return {row[0] for row in rows}

    def expire(self, before: float) -> int:
        """Delete messages whose TTL ran out before ``before``; return how many."""
        with self._db.transaction() as conn:
            return conn.execute("DELETE FROM messages WHERE expires_at < ?", (before,)).rowcount

    def _reply(self, conn: sqlite3.Connection, message_id: str) -> StoredMessage | None:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE kind = 'reply' AND reply_to = ?", (message_id,)
        ).fetchone()
        return _stored(row) if row is not None else None

    def _answer(
        self, conn: sqlite3.Connection, instruction: Message, code: ErrorCode, reason: str, now: float
    ) -> None:
        # The SuperLink replies in the node's name, as the node would have.
        reply = instruction.reply(Error(int(code), reason))
        md = reply.metadata
        conn.execute(
            f"INSERT OR IGNORE INTO messages ({_COLUMNS}, created_at) "
            "VALUES (?, 'reply', ?, 0, ?, ?, '', 0, 0, ?, ?)",
            (md.message_id, md.run_id, md.reply_to_message_id, encode_message(reply),
             now + max(md.ttl, 60.0), now),
        )  # fmt: skip
        self._db.signal(replies_key(md.run_id))
