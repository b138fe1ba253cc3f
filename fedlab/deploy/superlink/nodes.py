"""The SuperLink's table of SuperNodes and their liveness.

A node is online until ``patience x heartbeat_interval`` seconds after it was last heard
from (a heartbeat or any other Fleet call). Instructions waiting for a node that went
offline are answered by the SuperLink with a ``NODE_UNAVAILABLE`` error reply
(:mod:`fedlab.deploy.superlink.messages`).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from fedlab.context import UserConfig
from fedlab.deploy.superlink._db import Database, from_sql_id, to_sql_id
from fedlab.message import SERVER_NODE_ID

__all__ = ["DEFAULT_PATIENCE", "HEARTBEAT_GRAIN_S", "NodeRow", "Nodes"]

#: How many heartbeat intervals may pass in silence before a node counts as offline.
DEFAULT_PATIENCE = 2.0
#: A node's ``last_seen`` is written at most this often (and at most every tenth of its
#: patience window): calls closer together than that only read it.
HEARTBEAT_GRAIN_S = 1.0


@dataclass(frozen=True)
class NodeRow:
    """One node as the SuperLink knows it."""

    node_id: int
    node_config: UserConfig
    heartbeat_interval: float
    online_until: float
    last_seen: float
    online: bool


class Nodes:
    """Registration, heartbeats and liveness of SuperNodes."""

    def __init__(self, db: Database, *, patience: float = DEFAULT_PATIENCE) -> None:
        self._db = db
        self.patience = patience

    def register(self, node_config: UserConfig, heartbeat_interval: float) -> int:
        """Add a node and return its new id: random, 63-bit, never 0 (the server's id)."""
        now = self._db.clock()
        with self._db.transaction() as conn:
            while True:
                node_id = secrets.randbits(63)
                taken = conn.execute("SELECT 1 FROM nodes WHERE node_id = ?", (node_id,)).fetchone()
                if node_id != SERVER_NODE_ID and taken is None:
                    break
            conn.execute(
                "INSERT INTO nodes VALUES (?, ?, ?, ?, ?)",
                (node_id, json.dumps(node_config), heartbeat_interval,
                 now + self.patience * heartbeat_interval, now),
            )  # fmt: skip
        return node_id

    def rejoin(self, node_id: int, node_config: UserConfig, heartbeat_interval: float) -> bool:
        """Register a known node again under its id (a restarted SuperNode with its key).

        Its config and heartbeat interval are replaced and it is online from now; return
        False (and change nothing) if the SuperLink does not know ``node_id`` any more.
        """
        now = self._db.clock()
        with self._db.transaction() as conn:
            return conn.execute(
                "UPDATE nodes SET node_config = ?, heartbeat_interval = ?, online_until = ?, "
                "last_seen = ? WHERE node_id = ?",
                (json.dumps(node_config), heartbeat_interval, now + self.patience * heartbeat_interval,
                 now, to_sql_id(node_id)),
            ).rowcount > 0  # fmt: skip

    def unregister(self, node_id: int) -> None:
        """Mark a node offline at once (it said goodbye); its row stays for the record."""
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE nodes SET online_until = 0 WHERE node_id = ?", (to_sql_id(node_id),)
            )

    def heartbeat(self, node_id: int, heartbeat_interval: float | None = None) -> bool:
        """Record that ``node_id`` is alive; return False if the node is unknown.

        A node that had already gone offline comes back online (its old instructions have
        been answered for it by then, and its late replies to them are refused).
        """
        now = self._db.clock()
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT heartbeat_interval, online_until FROM nodes WHERE node_id = ?", (to_sql_id(node_id),)
            ).fetchone()
            if row is None:
                return False
            interval = heartbeat_interval if heartbeat_interval else row[0]
            window = self.patience * interval
            if interval == row[0] and now + window - row[1] <= min(HEARTBEAT_GRAIN_S, window / 10):
                # Heard from a moment ago: every Fleet call counts as a sign of life, and a
                # durable write (and a wake-up of every waiter) per call would cost more
                # than the whole call. Liveness is recorded to within this grain.
                return True
            conn.execute(
                "UPDATE nodes SET heartbeat_interval = ?, online_until = ?, last_seen = ? "
                "WHERE node_id = ?",
                (interval, now + self.patience * interval, now, to_sql_id(node_id)),
            )
        return True

    def is_online(self, node_id: int) -> bool:
        """True if ``node_id`` is registered and has been heard from recently enough."""
        rows = self._db.query(
            "SELECT online_until FROM nodes WHERE node_id = ?", (to_sql_id(node_id),)
        )
        return bool(rows) and rows[0][0] > self._db.clock()

    def get(self, node_id: int) -> NodeRow | None:
        """Return the node's row, or None if it never registered."""
        rows = self._db.query("SELECT * FROM nodes WHERE node_id = ?", (to_sql_id(node_id),))
        return self._row(rows[0]) if rows else None

    def list(self, *, include_offline: bool = False) -> list[NodeRow]:
        """Return the online nodes (or all), ordered by id."""
        rows = [self._row(r) for r in self._db.query("SELECT * FROM nodes ORDER BY node_id")]
        return rows if include_offline else [r for r in rows if r.online]

    def extend_all(self) -> None:
        """Give every node a full patience window from now (after a SuperLink restart).

        Nodes could not reach us while we were down; they must not count as dead for it.
        """
        now = self._db.clock()
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE nodes SET online_until = ? + ? * heartbeat_interval WHERE online_until > 0",
                (now, self.patience),
            )

    def forget_offline(self, before: float) -> None:
        """Delete nodes offline since before ``before`` that no message is addressed to."""
        with self._db.transaction() as conn:
            conn.execute(
                "DELETE FROM nodes WHERE online_until < ? AND NOT EXISTS "
                "(SELECT 1 FROM messages m WHERE m.dst_node_id = nodes.node_id)",
                (before,),
            )

    def _row(self, row: tuple[int, str, float, float, float]) -> NodeRow:
        node_id, config, interval, online_until, last_seen = row
        return NodeRow(
            node_id=from_sql_id(node_id),
            node_config=json.loads(config),
            heartbeat_interval=interval,
            online_until=online_until,
            last_seen=last_seen,
            online=online_until > self._db.clock(),
        )
