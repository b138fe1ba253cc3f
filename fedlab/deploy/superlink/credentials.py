"""Who may use this SuperLink: node keys, node ids bound to them, users, run owners.

Tables (beside the state's others, same database): ``node_keys`` (the allow-list added
with ``fedlab node add``; ``--node-keys`` adds a fixed list in memory), ``node_bindings``
(the node id each key registered as), ``users`` (name, role and the SHA-256 of a token:
tokens themselves are never stored) and ``run_access`` (each run's owner and the digest
of the secret its launched ServerApp presents). The bootstrap admin's token digest is
given at start (``--admin-token-file``), not stored.

Lookups run on every call, so the allow-list and the bindings are cached in memory and
changed only through this class.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fedlab.deploy.security.access import ADMIN, ROLES, Caller, token_digest
from fedlab.deploy.security.keys import fingerprint, parse_public_key, public_line, raw_public
from fedlab.deploy.superlink._db import Database, from_sql_id, to_sql_id
from fedlab.errors import DeployError

__all__ = ["Credentials", "NodeKeyRow", "UserRow", "new_token"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS node_keys (public_key BLOB PRIMARY KEY, comment TEXT NOT NULL, "
    "added_at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS node_bindings (public_key BLOB PRIMARY KEY, node_id INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, role TEXT NOT NULL, "
    "token_sha256 TEXT NOT NULL UNIQUE, created_at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS run_access (run_id INTEGER PRIMARY KEY, owner TEXT NOT NULL, "
    "serverapp_sha256 TEXT NOT NULL)",
)
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.@")
#: The name of the bootstrap admin (``--admin-token-file``).
ADMIN_NAME = "admin"


def new_token() -> str:
    """A fresh random token (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class NodeKeyRow:
    """One allow-listed node key."""

    key: Ed25519PublicKey
    comment: str
    added_at: float
    from_file: bool

    @property
    def fingerprint(self) -> str:
        """The key's short name."""
        return fingerprint(self.key)

    @property
    def line(self) -> str:
        """The key as one OpenSSH line."""
        return public_line(self.key, self.comment)


@dataclass(frozen=True)
class UserRow:
    """One Control API user."""

    name: str
    role: str
    created_at: float


class Credentials:
    """Node allow-list and bindings, users and run owners, in the SuperLink's database."""

    def __init__(
        self, db: Database, *, admin_token: str | None, fixed_node_keys: Sequence[Ed25519PublicKey] = ()
    ) -> None:
        self._db = db
        self._admin = token_digest(admin_token) if admin_token else None
        self._fixed = {raw_public(k): k for k in fixed_node_keys}
        self._lock = threading.Lock()
        with db.transaction() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)
        self._allowed = {bytes(r[0]) for r in db.query("SELECT public_key FROM node_keys")} | set(self._fixed)
        self._bindings = {bytes(k): from_sql_id(n) for k, n in db.query("SELECT * FROM node_bindings")}

    # --- nodes -------------------------------------------------------------------------

    def node_allowed(self, key: bytes) -> bool:
        """True if the raw public key is on the allow-list."""
        return key in self._allowed

    def add_node_key(self, line: str, comment: str = "") -> NodeKeyRow:
        """Allow a node key (an OpenSSH line or PEM); adding it twice changes nothing.

        Raises
        ------
        DeployError
            If it is not an Ed25519 public key.
        """
        key = parse_public_key(line, "the node key")
        raw = raw_public(key)
        comment = comment or (line.split()[2] if len(line.split()) > 2 else "")
        now = self._db.clock()
        with self._lock, self._db.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO node_keys VALUES (?, ?, ?)", (raw, comment, now))
            self._allowed.add(raw)
        return NodeKeyRow(key, comment, now, raw in self._fixed)

    def remove_node_key(self, key_fingerprint: str) -> bool:
        """Remove the key with this fingerprint; its node is refused from its next call on.

        Raises
        ------
        DeployError
            If the key comes from ``--node-keys`` (edit that file and restart instead).
        """
        for row in self.node_keys():
            if row.fingerprint == key_fingerprint:
                raw = raw_public(row.key)
                if row.from_file:
                    raise DeployError(
                        f"Key {key_fingerprint} comes from the SuperLink's --node-keys file; remove "
                        "it there and restart the SuperLink."
                    )
                with self._lock, self._db.transaction() as conn:
                    conn.execute("DELETE FROM node_keys WHERE public_key = ?", (raw,))
                    conn.execute("DELETE FROM node_bindings WHERE public_key = ?", (raw,))
                    self._allowed.discard(raw)
                    self._bindings.pop(raw, None)
                return True
        return False

    def node_keys(self) -> list[NodeKeyRow]:
        """Every allowed key: those of ``--node-keys`` first, then those added."""
        rows = [NodeKeyRow(k, "", 0.0, True) for k in self._fixed.values()]
        for raw, comment, added_at in self._db.query("SELECT * FROM node_keys ORDER BY added_at"):
            if bytes(raw) not in self._fixed:
                rows.append(NodeKeyRow(Ed25519PublicKey.from_public_bytes(bytes(raw)), comment, added_at, False))
        return rows

    def bind_node(self, key: bytes, node_id: int) -> None:
        """Bind ``node_id`` (just registered) to ``key``; the key's earlier id stops working."""
        with self._lock, self._db.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO node_bindings VALUES (?, ?)", (key, to_sql_id(node_id)))
            self._bindings[key] = node_id

    def bound_node(self, key: bytes) -> int | None:
        """The node id registered for a key, or None."""
        return self._bindings.get(key)

    # --- users -------------------------------------------------------------------------

    def add_user(self, name: str, role: str) -> tuple[UserRow, str]:
        """Add a user and return it with its new token (shown once, stored as a hash).

        Raises
        ------
        DeployError
            If the name is taken or malformed, or the role unknown.
        """
        if not name or len(name) > 64 or not set(name) <= _NAME_CHARS or name == ADMIN_NAME:
            raise DeployError(
                f"User name {name!r} is not allowed: use up to 64 letters, digits and -_.@ "
                f"(and not {ADMIN_NAME!r}, the bootstrap admin)."
            )
        if role not in ROLES:
            raise DeployError(f"Role {role!r} is unknown; use one of {', '.join(ROLES)}.")
        token = new_token()
        now = self._db.clock()
        with self._db.transaction() as conn:
            if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise DeployError(f"User {name!r} exists; remove it first to give it a new token.")
            conn.execute("INSERT INTO users VALUES (?, ?, ?, ?)", (name, role, token_digest(token), now))
        return UserRow(name, role, now), token

    def remove_user(self, name: str) -> bool:
        """Remove a user; its token stops working at once."""
        with self._db.transaction() as conn:
            return conn.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount > 0

    def users(self) -> list[UserRow]:
        """Every user, the bootstrap admin first."""
        rows = [UserRow(ADMIN_NAME, ADMIN, 0.0)] if self._admin else []
        return rows + [UserRow(n, r, t) for n, r, _, t in self._db.query("SELECT * FROM users ORDER BY name")]

    def control_caller(self, digest: str) -> Caller | None:
        """The user whose token has this digest, or None (the Control API's lookup)."""
        if self._admin is not None and secrets.compare_digest(digest, self._admin):
            return Caller("user", name=ADMIN_NAME, role=ADMIN)
        rows = self._db.query("SELECT name, role FROM users WHERE token_sha256 = ?", (digest,))
        return Caller("user", name=rows[0][0], role=rows[0][1]) if rows else None

    # --- runs --------------------------------------------------------------------------

    def set_run_access(self, run_id: int, owner: str, serverapp_token: str | None = None) -> None:
        """Record who owns a run and (for a launched ServerApp) the secret it presents."""
        digest = token_digest(serverapp_token) if serverapp_token else ""
        with self._db.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO run_access VALUES (?, ?, ?)", (run_id, owner, digest))

    def run_owner(self, run_id: int) -> str:
        """The user who started the run ("" if unknown)."""
        if not 0 < run_id < 2**63:  # a uint64 from a request; run ids are SQLite rowids
            return ""
        rows = self._db.query("SELECT owner FROM run_access WHERE run_id = ?", (run_id,))
        return str(rows[0][0]) if rows else ""

    def serverappio_caller(self, digest: str) -> Caller | None:
        """A launched ServerApp (its run's secret) or a Control user (the ServerAppIo lookup)."""
        rows = self._db.query("SELECT run_id FROM run_access WHERE serverapp_sha256 = ?", (digest,))
        if rows:
            return Caller("serverapp", name=f"run-{rows[0][0]}", run_id=int(rows[0][0]))
        return self.control_caller(digest)
