"""The authenticated mode of the RPC target: credentials, forged metadata and what must follow.

An input in this mode is served through the SuperLink's real gates (``NodeGate`` on
Fleet, ``TokenGate`` on Control and ServerAppIo). Its auth byte picks what the call
carries (:func:`fleet_metadata`, :func:`token_metadata`); the fuzzer's *material* bytes
fill in the forged parts. Each choice comes with what the gate must decide:

- ``REFUSE``: the call ends with UNAUTHENTICATED before the servicer runs;
- ``ADMIT``: the gate lets it through (any outcome but UNAUTHENTICATED);
- ``EITHER``: the material may or may not have rebuilt a valid credential.

Whatever the choice, a crash is still a crash, and a reader never changes anything on the
Control API, nor a plain user the keys and users.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import SimpleNamespace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedlab.deploy.security import requests as requests_module
from fedlab.deploy.security.keys import public_line, raw_public
from fedlab.deploy.security.requests import WINDOW_S, NodeSigner

REFUSE, ADMIT, EITHER = "refuse", "admit", "either"
#: The allow-listed node's key (from ``--node-keys``), bound to the world's node.
NODE_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
#: A key added at run time (``fedlab node add``), not bound to any node.
ADDED_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
#: A well-formed key the SuperLink has never seen.
STRANGER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(64, 96)))
ADDED_KEY_LINE = public_line(ADDED_KEY.public_key(), "added-node")
ADMIN_TOKEN = "fuzz-admin-token-" + "a" * 26
SERVERAPP_TOKEN = "fuzz-serverapp-secret-" + "b" * 21
#: Control RPCs only an admin may call, and those a reader may not call either.
ADMIN_ONLY = frozenset({"AddNodeKey", "RemoveNodeKey", "ListNodeKeys", "AddUser", "RemoveUser", "ListUsers"})
CHANGING = ADMIN_ONLY | {"CreateRun", "StopRun", "FinishRun", "PushObject", "FindMissingObjects"}
_FIELDS = ("fedlab-node-key", "fedlab-node-id", "fedlab-timestamp", "fedlab-nonce", "fedlab-signature")

Metadata = tuple[tuple[str, str], ...]


@contextlib.contextmanager
def signing_clock(now: float) -> Iterator[None]:
    """Sign with the clock at ``now`` (the world's time), so that a crash replays."""
    saved = requests_module.time
    requests_module.time = SimpleNamespace(time=lambda: now)  # type: ignore[assignment]
    try:
        yield
    finally:
        requests_module.time = saved


def _text(material: bytes) -> str:
    return material.decode("utf-8", "replace")


def _pairs(material: bytes) -> Metadata:
    """Arbitrary metadata that is no credential: NUL-separated keys and values."""
    parts = [_text(p) for p in material.split(b"\0")]
    return tuple((f"x-fuzz-{k}", v) for k, v in zip(parts[::2], parts[1::2]))


def _same(field: str, new: str, old: str) -> bool:
    """Whether a replaced metadata field still means what was signed (hex case, int forms)."""
    try:
        if field in ("fedlab-node-key", "fedlab-signature"):
            return bytes.fromhex(new) == bytes.fromhex(old)
        if field == "fedlab-node-id":
            return int(new) == int(old)
    except ValueError:
        return False
    return new == old


def fleet_metadata(
    kind: int, material: bytes, *, method: str, body: bytes | None, node_id: int, now: float
) -> tuple[Metadata, str]:
    """Signed-request metadata of one Fleet call, and what :class:`NodeGate` must decide.

    ``body`` is the serialised request (None for an upload stream, which signs no body).
    Kinds: 0 no credential; 1 signed by the allow-listed node; 2 by a key not on the
    allow-list; 3 by the node but claiming another node id; 4 over another body; 5 every
    field forged; 6 signed at another time; 7 signed, then one field replaced.
    """
    signer = NodeSigner(STRANGER_KEY if kind == 2 else NODE_KEY)
    signer.node_id = node_id
    stamp, verdict = now, ADMIT
    if kind == 3:
        signer.node_id = int.from_bytes(material[:8], "little")
        same = signer.node_id == node_id or method.endswith("/Register")
        verdict = ADMIT if same else REFUSE
    if kind == 4:
        verdict = ADMIT if material == (body or b"") else REFUSE
        body = material
    if kind == 6:
        shift = int.from_bytes(material[:2], "little", signed=True) / 4
        stamp, verdict = now + shift, ADMIT if abs(shift) <= WINDOW_S else REFUSE
    if kind == 0:
        return _pairs(material), REFUSE
    if kind == 5:
        forged = [_text(p) for p in material.split(b"\0")] + [""] * len(_FIELDS)
        return tuple(zip(_FIELDS, forged)), REFUSE
    with signing_clock(stamp):
        metadata = signer.metadata(method, body)
    if kind == 2:
        verdict = REFUSE
    if kind == 7 and material:
        field = _FIELDS[material[0] % len(_FIELDS)]
        new = _text(material[1:])
        old = dict(metadata)[field]
        metadata = tuple((k, new if k == field else v) for k, v in metadata)
        verdict = ADMIT if _same(field, new, old) else REFUSE
    return metadata, verdict


def token_metadata(kind: int, material: bytes, tokens: dict[str, str], service: str) -> tuple[Metadata, str]:
    """The bearer-token metadata of one Control or ServerAppIo call, and what must follow.

    ``tokens`` maps ``admin``, ``user``, ``reader``, ``serverapp`` and ``removed`` (a
    deleted user's) to their tokens. Kinds: 0 no credential; 1 admin; 2 user; 3 reader;
    4 the running run's ServerApp secret; 5 a forged token; 6 a forged header; 7 the
    removed user's token.
    """
    if kind == 0:
        return _pairs(material), REFUSE
    if kind in (5, 6):
        header = _text(material) if kind == 6 else f"Bearer {_text(material)}"
        known = any(token in header for token in tokens.values() if token)
        return (("authorization", header),), EITHER if known else REFUSE
    name = {1: "admin", 2: "user", 3: "reader", 4: "serverapp", 7: "removed"}[kind]
    scheme = ("Bearer", "bearer", "BEARER")[material[0] % 3] if material else "Bearer"
    verdict = ADMIT
    if kind == 7 or (kind == 4 and service != "ServerAppIo"):
        verdict = REFUSE
    return (("authorization", f"{scheme} {tokens[name]}"),), verdict


def role_of(kind: int) -> str:
    """The Control role a token kind stands for ("" for none of the three)."""
    return {1: "admin", 2: "user", 3: "reader"}.get(kind, "")


def must_not_return(service: str, method: str, kind: int) -> bool:
    """True where the token's role forbids the call: it must end with a status, not return."""
    if service != "Control":
        return False
    role = role_of(kind)
    return (role == "reader" and method in CHANGING) or (role == "user" and method in ADMIN_ONLY)


def node_key_raw() -> bytes:
    """The allow-listed node key, raw (what the SuperLink binds)."""
    return raw_public(NODE_KEY.public_key())
