"""Fuzz every RPC of the Fleet, ServerAppIo and Control services, through its real handler.

Each input picks a method (first byte, its low 7 bits) and a few substitutions (second
byte, below); the rest is the request: the bytes go through the method's production request deserialiser
(the handler ``fedlab.deploy.transport.rpc.service_handler`` builds), and a request that
parses is served by the real servicer against an in-memory LinkState holding one node,
one running and one finished run, an instruction, objects, events and logs. The
responses go through the production response serialiser.

Acceptable outcomes: the deserialiser refuses the bytes (protobuf's DecodeError, or the
ValueError of ``decode_chunk``), or the servicer returns (or streams to the end), or it
aborts the call with a gRPC status. Anything else is a crash: on a real server it is an
UNKNOWN status and a traceback in the log.

For client-streaming calls (PushObject) the body is a sequence of chunks, each a 2-byte
little-endian length and that many bytes.

Two modes, by the first byte's top bit. Open (0): served through ``OpenGate`` (an
``--insecure`` SuperLink), so every input reaches the handler body. Authenticated (1):
served through the real ``NodeGate`` (Fleet) and ``TokenGate`` (Control, ServerAppIo);
the third byte picks the credential (low 3 bits, see ``_auth.py``; bit 3 on Fleet: the
same signed call is sent twice), the fourth is the length of the *material* that follows
(the forged parts), then the request. Besides "no crash", a call the gate must refuse
ends with UNAUTHENTICATED, one it must admit does not, a replayed signed call is refused,
and a reader (or a plain user, for keys and users) never gets a normal return from a
Control RPC that its role forbids.

Substitution flags (second byte), so that the fuzzer gets past the lookups of ids it
cannot guess: 1 node_id := the registered node; 2 run_id := the running run; 4 run_id :=
the finished run; 8 digest(s) := the instruction's content object (16: the run's bundle);
32 message_ids += the instruction's id; 64 CreateRun's bundle := the stored bundle's ref;
128 a PushObject's offsets made contiguous and its first ref := the ref of its data.
Run: ``python fuzz/fuzz_rpc.py fuzz/corpus/rpc -runs=1000000``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import random
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, NamedTuple

from _common import instrumented, run

with instrumented():
    import _auth  # its fedlab imports are instrumented too
    import grpc
    import numpy as np
    from google.protobuf.message import DecodeError

    from fedlab.deploy import proto as pb
    from fedlab.deploy.security.access import NodeGate, OpenGate, TokenGate
    from fedlab.deploy.security.audit import AuditLog
    from fedlab.deploy.security.requests import NodeVerifier
    from fedlab.deploy.superlink import nodes as nodes_module
    from fedlab.deploy.superlink.control import ControlServicer
    from fedlab.deploy.superlink.credentials import Credentials
    from fedlab.deploy.superlink.fleet import FleetServicer
    from fedlab.deploy.superlink.serverappio import ServerAppIoServicer
    from fedlab.deploy.superlink.state import LinkState
    from fedlab.deploy.transport.events_json import event_to_json
    from fedlab.deploy.transport.rpc import service_handler
    from fedlab.deploy.transport.wire import decode_header, split_message
    from fedlab.events import RoundStarted
    from fedlab.message import Message, Metadata
    from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
    from fedlab.wire.codec import encode_record_dict

TARGET = "rpc"
NOW = 1_700_000_000.0
MAX_OBJECT_SIZE = 1 << 20
#: Most response items of a stream read (a stream of an object is a few chunks here).
_MAX_ITEMS = 1000
_MAX_CHUNKS = 16
INSTRUCTION_ID = "0123456789abcdef0123456789abcdef"
BUNDLE = b"PK\x05\x06" + bytes(18)  # an empty zip: the store does not look inside


def reply_content() -> RecordDict:
    """The content of a reply to the instruction; the world has it stored already."""
    return RecordDict({"metrics": MetricRecord({"num-examples": 10})})

logging.getLogger("fedlab").setLevel(logging.CRITICAL)  # refusals log; keep the fuzzer quiet


def _methods() -> list[tuple[str, Any]]:
    return sorted(
        ((service, method) for service in pb.SERVICES for method in pb.service_descriptor(service).methods),
        key=lambda item: (item[0], item[1].name),
    )


METHODS = _methods()


class Aborted(Exception):
    """What the fake context's ``abort`` raises (gRPC's own raises a bare Exception)."""

    def __init__(self, code: Any, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code


class FakeContext:
    """A ``grpc.ServicerContext`` stand-in: abort raises, the client hangs up after one look."""

    def __init__(self, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self._looks = 1
        self._metadata = metadata

    def is_active(self) -> bool:
        self._looks -= 1
        return self._looks >= 0

    def abort(self, code: Any, details: str) -> None:
        if not isinstance(code, grpc.StatusCode) or code is grpc.StatusCode.OK:
            raise TypeError(f"abort with {code!r}, not an error status")
        if not isinstance(details, str):
            raise TypeError(f"abort with details {details!r}, not a str")
        raise Aborted(code, details)

    def invocation_metadata(self) -> tuple[Any, ...]:
        return self._metadata

    def peer(self) -> str:
        return "ipv4:127.0.0.1:40000"

    def time_remaining(self) -> float:
        return 30.0

    def add_callback(self, callback: Any) -> bool:
        return True

    def auth_context(self) -> dict[str, Any]:
        return {}

    def set_code(self, code: Any) -> None:
        pass

    def set_details(self, details: str) -> None:
        pass

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass

    def send_initial_metadata(self, metadata: Any) -> None:
        pass


class _CallDetails(NamedTuple):
    method: str
    invocation_metadata: tuple[Any, ...]


class _Launcher:
    """Records launches instead of starting ServerApp processes."""

    def __init__(self) -> None:
        self.launched: list[int] = []

    def launch(self, run_id: int, token: str | None = None) -> None:
        self.launched.append(run_id)

    def stop(self, run_id: int) -> None:
        pass


def instruction(run_id: int, node_id: int) -> Message:
    """The instruction the world holds for its node (fixed ids, so inputs can refer to it)."""
    metadata = Metadata(
        run_id=run_id, message_id=INSTRUCTION_ID, src_node_id=0, dst_node_id=node_id,
        reply_to_message_id="", group_id="1", message_type="train", ttl=3600.0, created_at=NOW,
    )  # fmt: skip
    content = RecordDict({
        "arrays": ArrayRecord([np.arange(4.0)]),
        "config": ConfigRecord({"lr": 0.1, "epochs": 1}),
        "metrics": MetricRecord({"loss": 0.5}),
    })  # fmt: skip
    return Message.from_parts(metadata, content=content)


@contextlib.contextmanager
def fixed_node_ids() -> Iterator[None]:
    """Node ids drawn from a seeded generator, so that a crash replays: the same input
    meets the same world. The SuperLink's own randomness is back afterwards."""
    saved = nodes_module.secrets
    nodes_module.secrets = SimpleNamespace(randbits=random.Random(0).getrandbits)  # type: ignore[assignment]
    try:
        yield
    finally:
        nodes_module.secrets = saved


class World:
    """One in-memory LinkState with a node, runs, an instruction, objects, events and users.

    The node is registered with the allow-listed key of ``_auth``; the running run belongs
    to the user ``alice`` and has a launched ServerApp's secret; ``rita`` is a reader;
    ``bob`` was removed. Build it inside :func:`fixed_node_ids` for the same ids every run.
    """

    def __init__(self) -> None:
        self.state = LinkState(clock=lambda: NOW)
        self.credentials = Credentials(
            self.state.db, admin_token=_auth.ADMIN_TOKEN, fixed_node_keys=[_auth.NODE_KEY.public_key()]
        )
        self.credentials.add_node_key(_auth.ADDED_KEY_LINE)
        self.node_id = self.state.nodes.register({"partition-id": 0}, 30.0)
        self.credentials.bind_node(_auth.node_key_raw(), self.node_id)
        self.bundle_digest = self.state.objects.put(BUNDLE)
        self.run_id = self.state.runs.create(
            {"lr": 0.1}, attached=True, bundle_digest=self.bundle_digest, bundle_size=len(BUNDLE)
        )
        self.credentials.set_run_access(self.run_id, "alice", _auth.SERVERAPP_TOKEN)
        self.finished_run_id = self.state.runs.create({}, attached=False)
        self.state.finish_run(self.finished_run_id, "completed")
        self.tokens = {"admin": _auth.ADMIN_TOKEN, "serverapp": _auth.SERVERAPP_TOKEN}
        for name, role, key in (("alice", "user", "user"), ("rita", "reader", "reader"), ("bob", "user", "removed")):
            self.tokens[key] = self.credentials.add_user(name, role)[1]
        self.credentials.remove_user("bob")
        wire, blob = split_message(instruction(self.run_id, self.node_id))
        assert blob is not None
        self.content_digest = self.state.objects.put(blob)
        self.state.objects.put(encode_record_dict(reply_content()))
        self.state.messages.push_instructions(self.run_id, [(decode_header(wire), wire)])
        started = RoundStarted(run_id=self.run_id, round=1, phase="train", node_ids=(self.node_id,), timestamp=NOW)
        self.state.journal.add_events(self.run_id, [event_to_json(started)])
        self.state.journal.add_logs(self.run_id, ["round 1 started"])
        launcher, audit = _Launcher(), AuditLog(None)
        servicers = {
            "Fleet": FleetServicer(
                self.state, max_object_size=MAX_OBJECT_SIZE, credentials=self.credentials, audit=audit
            ),
            "ServerAppIo": ServerAppIoServicer(
                self.state, max_object_size=MAX_OBJECT_SIZE, credentials=self.credentials
            ),
            "Control": ControlServicer(
                self.state, launcher, max_bundle_size=MAX_OBJECT_SIZE, info=pb.SuperLinkInfo,
                credentials=self.credentials, audit=audit,  # type: ignore[arg-type]
            ),
        }  # fmt: skip
        gates = {
            "Fleet": NodeGate(NodeVerifier(self.credentials.node_allowed, clock=lambda: NOW),
                              self.credentials.bound_node),
            "ServerAppIo": TokenGate(self.credentials.serverappio_caller, "ServerAppIo"),
            "Control": TokenGate(self.credentials.control_caller, "Control"),
        }  # fmt: skip
        self.refusals: list[tuple[str, str, str]] = []
        self.handlers = {
            (name, secured): service_handler(
                name, servicer, gates[name] if secured else OpenGate(), on_refused=self._refused
            )
            for name, servicer in servicers.items()
            for secured in (False, True)
        }

    def _refused(self, method: str, peer: str, reason: str) -> None:
        assert all(isinstance(x, str) for x in (method, peer, reason)), (method, peer, reason)
        self.refusals.append((method, peer, reason))

    def handler(self, service: str, method: str, *, secured: bool = False) -> Any:
        """The production RpcMethodHandler of ``service.method`` (behind the real gate if ``secured``)."""
        path = f"/{pb.PACKAGE}.{service}/{method}"
        return self.handlers[service, secured].service(_CallDetails(path, ()))

    def close(self) -> None:
        self.state.close()


def _substitute(request: Any, flags: int, world: World) -> Any:
    fields = request.DESCRIPTOR.fields_by_name
    if flags & 1 and "node_id" in fields:
        request.node_id = world.node_id
    if flags & 6 and "run_id" in fields:
        request.run_id = world.run_id if flags & 2 else world.finished_run_id
    digest = world.content_digest if flags & 8 else world.bundle_digest
    if flags & 24 and "digest" in fields:
        request.digest = digest
    if flags & 24 and "digests" in fields:
        request.digests.append(digest)
    if flags & 32 and "message_ids" in fields:
        request.message_ids.append(INSTRUCTION_ID)
    if flags & 64 and "bundle" in fields:
        request.bundle.digest, request.bundle.size = world.bundle_digest, len(BUNDLE)
    return request


def _chunks(body: bytes, deserialise: Any, flags: int, world: World) -> list[Any] | None:
    raw = []
    pos = 0
    while pos < len(body) and len(raw) < _MAX_CHUNKS:
        length = int.from_bytes(body[pos : pos + 2], "little")
        raw.append(body[pos + 2 : pos + 2 + length])
        pos += 2 + length
    try:
        chunks = [deserialise(part) for part in raw]
    except (DecodeError, ValueError):
        return None
    if flags & 1:
        chunks = [dataclasses.replace(c, node_id=world.node_id) for c in chunks]
    if flags & 128 and chunks:
        data = b"".join(bytes(c.data) for c in chunks)
        ref = pb.ObjectRef(digest=hashlib.sha256(data).hexdigest(), size=len(data))
        fixed, offset = [], 0
        for k, c in enumerate(chunks):
            fixed.append(dataclasses.replace(c, offset=offset, ref=ref if k == 0 else None))
            offset += len(c.data)
        chunks = fixed
    return chunks


def _drain(items: Iterator[Any], serialise: Any) -> None:
    for count, item in enumerate(items):
        serialise(item)
        if count >= _MAX_ITEMS:
            break


def _request(handler: Any, body: bytes, flags: int, world: World) -> Any:
    """What the handler is called with: the chunks (a list), or the (digest, request) pair;
    None if the bytes do not parse."""
    if handler.request_streaming:
        return _chunks(body, handler.request_deserializer, flags, world)
    try:
        digest, request = handler.request_deserializer(body)
    except DecodeError:
        return None
    return digest, _substitute(request, flags, world)


def _call(handler: Any, request: Any, metadata: tuple[tuple[str, str], ...] = ()) -> Any:
    """Serve one call; return None for a normal return or the status it was aborted with."""
    context = FakeContext(metadata)
    try:
        if handler.request_streaming:
            call = handler.stream_stream if handler.response_streaming else handler.stream_unary
            outcome = call(iter(request), context)
        else:
            call = handler.unary_stream if handler.response_streaming else handler.unary_unary
            outcome = call(request, context)
        if handler.response_streaming:
            _drain(outcome, handler.response_serializer)
        else:
            handler.response_serializer(outcome)
    except Aborted as aborted:
        return aborted.code
    return None


def method_of(data: bytes) -> tuple[str, Any]:
    """The (service, method descriptor) an input calls."""
    return METHODS[(data[0] & 0x7F) % len(METHODS)]


def serve(world: World, data: bytes) -> None:
    """Serve one input against ``world``; raise on a crash (see the module docstring)."""
    if len(data) < 2:
        return
    service, method = method_of(data)
    flags = data[1]
    if not data[0] & 0x80:
        request = _request(world.handler(service, method.name), data[2:], flags, world)
        if request is not None:
            _call(world.handler(service, method.name), request)
        return
    if len(data) < 4:
        return
    kind, replay, size = data[2] & 7, bool(data[2] & 8), data[3]
    material, body = data[4 : 4 + size], data[4 + size :]
    handler = world.handler(service, method.name, secured=True)
    request = _request(handler, body, flags, world)
    if request is None:
        return
    path = f"/{pb.PACKAGE}.{service}/{method.name}"
    if service == "Fleet":
        signed_body = None if handler.request_streaming else body
        metadata, verdict = _auth.fleet_metadata(
            kind, material, method=path, body=signed_body, node_id=world.node_id, now=NOW
        )
    else:
        metadata, verdict = _auth.token_metadata(kind, material, world.tokens, service)
    code = _call(handler, request, metadata)
    refused = code is grpc.StatusCode.UNAUTHENTICATED
    if verdict != _auth.EITHER and refused != (verdict == _auth.REFUSE):
        raise AssertionError(f"{path} with credential kind {kind}: the gate should {verdict}, got {code}")
    if code is None and _auth.must_not_return(service, method.name, kind):
        raise AssertionError(f"{path} returned normally for a {_auth.role_of(kind)}")
    if service == "Fleet" and replay and not refused:
        again = _call(handler, request, metadata)
        if again is not grpc.StatusCode.UNAUTHENTICATED:
            raise AssertionError(f"{path}: a replayed signed request got {again}, not UNAUTHENTICATED")


#: Inputs served per mode; with FUZZ_RPC_COUNTS=FILE set, written there every 1000 inputs.
COUNTS = {"open": 0, "authenticated": 0}
_COUNTS_FILE = os.environ.get("FUZZ_RPC_COUNTS")


def _count(data: bytes) -> None:
    COUNTS["authenticated" if data and data[0] & 0x80 else "open"] += 1
    if _COUNTS_FILE and sum(COUNTS.values()) % 1000 == 0:
        with open(_COUNTS_FILE, "w") as out:
            json.dump(COUNTS, out)


def test_one_input(data: bytes) -> None:
    """Serve ``data`` against a fresh world, so that every input is judged on its own."""
    _count(data)
    with fixed_node_ids():
        world = World()
        try:
            serve(world, data)
        finally:
            world.close()


if __name__ == "__main__":
    run(test_one_input)
