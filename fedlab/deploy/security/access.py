"""Who is calling: the gates that admit a gRPC call, and the caller a servicer sees.

Every SuperLink service is served through a *gate* (:mod:`fedlab.deploy.transport.rpc`
asks it before the servicer method runs): :class:`NodeGate` for Fleet (signed node
requests), :class:`TokenGate` for Control and ServerAppIo (bearer tokens), and
:class:`OpenGate` when the SuperLink was started with ``--insecure``. A gate returns the
:class:`Caller` or raises :class:`~fedlab.deploy.security.requests.AuthFailure` (sent as
UNAUTHENTICATED); the servicer then reads the caller with :func:`caller_of` and decides
what it may do (PERMISSION_DENIED otherwise).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from fedlab.deploy.security.requests import AuthFailure, NodeVerifier

__all__ = [
    "ADMIN",
    "Caller",
    "Gate",
    "NodeGate",
    "OpenGate",
    "READER",
    "ROLES",
    "TokenGate",
    "USER",
    "bound_caller",
    "caller_of",
    "token_digest",
]

ADMIN, USER, READER = "admin", "user", "reader"
#: Roles on the Control API: admin does everything; user starts runs and sees and stops
#: its own; reader lists and reads every run and changes nothing.
ROLES = (ADMIN, USER, READER)


@dataclass(frozen=True)
class Caller:
    """The authenticated party behind one call.

    ``kind`` is ``"user"`` (a Control token), ``"serverapp"`` (the per-run secret of a
    ServerApp this SuperLink launched; ``run_id`` says which run), ``"node"`` (a signed
    SuperNode request; ``node_key`` and ``node_id``), ``"open"`` (an ``--insecure``
    SuperLink: everyone may do everything) or ``"nobody"``.
    """

    kind: str
    name: str = ""
    role: str = ""
    run_id: int = 0
    node_key: bytes = b""
    node_id: int = 0

    @property
    def is_admin(self) -> bool:
        """True for an admin user and on an ``--insecure`` SuperLink."""
        return self.kind == "open" or (self.kind == "user" and self.role == ADMIN)

    def owns(self, owner: str) -> bool:
        """True if this caller may act on a run owned by ``owner`` (its own, or as admin)."""
        return self.is_admin or (self.kind == "user" and self.role == USER and self.name == owner)

    def reads(self, owner: str) -> bool:
        """True if this caller may read a run owned by ``owner``."""
        return self.owns(owner) or (self.kind == "user" and self.role == READER)

    def describe(self) -> str:
        """How the audit log names this caller."""
        if self.kind == "user":
            return f"user:{self.name}"
        if self.kind == "serverapp":
            return f"serverapp:run-{self.run_id}"
        if self.kind == "node":
            return f"node:{self.node_id}"
        return self.kind


NOBODY = Caller("nobody")
OPEN = Caller("open", name="insecure", role=ADMIN)


class Gate(Protocol):
    """Admits a call: returns its caller or raises AuthFailure."""

    def admit(self, method: str, body_digest: bytes, metadata: Mapping[str, str]) -> Caller:
        """The caller of ``method`` (full path) whose serialised request hashes to ``body_digest``."""


class OpenGate:
    """The gate of an ``--insecure`` SuperLink: every call is admitted as :data:`OPEN`."""

    def admit(self, method: str, body_digest: bytes, metadata: Mapping[str, str]) -> Caller:
        """Admit everyone."""
        return OPEN


class NodeGate:
    """Admits signed requests of allow-listed SuperNodes whose node id is bound to their key.

    ``bound_node(key)`` returns the node id registered for a raw public key, or None. A
    Register call is not held to a binding (it is what makes one; the node id it claims is
    ignored); every other call must claim the id bound to its key.
    """

    def __init__(self, verifier: NodeVerifier, bound_node: Callable[[bytes], int | None]) -> None:
        self._verifier = verifier
        self._bound_node = bound_node

    def admit(self, method: str, body_digest: bytes, metadata: Mapping[str, str]) -> Caller:
        """Verify the request's signature, freshness, key and node id."""
        signed = self._verifier.verify(method, body_digest, metadata)
        if not method.endswith("/Register"):
            bound = self._bound_node(signed.key)
            if bound is None or bound != signed.node_id:
                raise AuthFailure(
                    f"Node id {signed.node_id} is not the one registered for this node's key; "
                    "register first and use the node id the SuperLink gave."
                )
        return Caller("node", node_key=signed.key, node_id=signed.node_id)


def token_digest(token: str) -> str:
    """The SHA-256 (hex) under which a token is stored: tokens themselves are never kept."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenGate:
    """Admits calls with an ``authorization: Bearer TOKEN`` header that ``lookup`` knows.

    ``lookup(token_digest)`` returns the caller for a known token's digest, or None.
    """

    def __init__(self, lookup: Callable[[str], Caller | None], what: str) -> None:
        self._lookup = lookup
        self._what = what

    def admit(self, method: str, body_digest: bytes, metadata: Mapping[str, str]) -> Caller:
        """Look the bearer token up."""
        header = metadata.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthFailure(
                f"The {self._what} API needs credentials: pass --token/--token-file (or set "
                "FEDLAB_TOKEN) with a token from the SuperLink's operator (`fedlab user add`)."
            )
        caller = self._lookup(token_digest(token.strip()))
        if caller is None:
            raise AuthFailure(f"The token is not valid on this SuperLink's {self._what} API; ask its operator for one.")
        return caller


_callers: dict[int, Caller] = {}
_lock = threading.Lock()


@contextmanager
def bound_caller(context: Any, caller: Caller) -> Iterator[None]:
    """Make ``caller`` what :func:`caller_of` returns for ``context`` while the call runs."""
    with _lock:
        _callers[id(context)] = caller
    try:
        yield
    finally:
        with _lock:
            _callers.pop(id(context), None)


def caller_of(context: Any) -> Caller:
    """The caller admitted for the call behind ``context`` (:data:`NOBODY` if none was)."""
    with _lock:
        return _callers.get(id(context), NOBODY)
