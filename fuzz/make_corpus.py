"""Write the seed corpora under fuzz/corpus/<target>/ from real, valid inputs.

Every seed is made by fedlab's own encoders (messages, wire headers, events, bundles,
RPC requests), so the fuzzers start from inputs the decoders accept and mutate from
there. The output is deterministic; run it again after a format change:
``python fuzz/make_corpus.py`` (it replaces the corpus folders).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import _auth
import fuzz_bundle
import fuzz_rpc
import numpy as np
from _common import CORPUS

from fedlab.deploy import proto as pb
from fedlab.deploy.bundle import build_bundle
from fedlab.deploy.security.keys import fingerprint, public_line
from fedlab.deploy.transport.chunks import Chunk, encode_chunk
from fedlab.deploy.transport.events_json import event_to_json
from fedlab.deploy.transport.wire import split_message
from fedlab.events import (
    ClientReplied,
    Evaluated,
    ReplyRejected,
    RoundAggregated,
    RoundStarted,
    RunFinished,
    RunStarted,
    StrategyReport,
)
from fedlab.message import Error, Message, Metadata
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.wire.codec import encode_message, encode_record_dict

NOW = fuzz_rpc.NOW
#: When the built bundle's run binding is issued (it stays valid for a while after 2030).
BINDING_ISSUED = 1_900_000_000.0


def _metadata(**change: object) -> Metadata:
    values: dict[str, object] = {
        "run_id": 1, "message_id": "ab" * 16, "src_node_id": 0, "dst_node_id": 7,
        "reply_to_message_id": "", "group_id": "3", "message_type": "train", "ttl": 600.0,
        "created_at": NOW,
    }  # fmt: skip
    values.update(change)
    return Metadata(**values)  # type: ignore[arg-type]


def record_dicts() -> Iterator[RecordDict]:
    """RecordDicts covering every kind of value the codec carries."""
    yield RecordDict()
    yield RecordDict({"arrays": ArrayRecord([np.arange(6.0).reshape(2, 3)])})
    yield RecordDict({
        "model": ArrayRecord({
            "f16": np.ones(3, np.float16), "f32": np.full((2, 2), -0.0, np.float32),
            "i8": np.arange(-3, 3, dtype=np.int8), "u64": np.array([2**64 - 1], np.uint64),
            "bool": np.array([True, False]), "scalar": np.array(3.5), "empty": np.zeros((0, 4)),
            "c128": np.array([1 + 2j]),
        }),
        "metrics": MetricRecord({"loss": 0.25, "acc": [0.5, 0.75], "n": 10, "ns": [1, 2]}),
        "config": ConfigRecord({
            "lr": 0.01, "name": "résumé", "flag": True, "blob": b"\x00\xff", "ints": [1, -2],
            "names": ["a", "b"], "flags": [True, False], "blobs": [b"x"], "inf": float("inf"),
        }),
    })  # fmt: skip
    yield RecordDict({"metrics": MetricRecord({"nan": float("nan"), "big": 2**63 - 1})})


def codec_seeds() -> Iterator[bytes]:
    for k, content in enumerate(record_dicts()):
        yield encode_message(Message.from_parts(_metadata(group_id=str(k)), content=content))
        yield encode_record_dict(content)
    for kind in ("evaluate", "query", "train.custom"):
        yield encode_message(Message.from_parts(_metadata(message_type=kind), content=RecordDict()))
    yield encode_message(Message.from_parts(_metadata(), error=Error(code=3, reason="it broke")))


def wire_seeds() -> Iterator[bytes]:
    instruction = Message.from_parts(_metadata(), content=list(record_dicts())[2])
    reply = Message.from_parts(
        _metadata(src_node_id=7, dst_node_id=0, reply_to_message_id="ab" * 16, message_id="cd" * 16),
        content=RecordDict({"metrics": MetricRecord({"num-examples": 10})}),
    )
    failed = Message.from_parts(_metadata(src_node_id=7, dst_node_id=0), error=Error(2, "bad"))
    for message in (instruction, reply, failed):
        wire, _ = split_message(message, duration_s=1.5)
        yield wire.SerializeToString()


def event_seeds() -> Iterator[bytes]:
    events = [
        RunStarted(run_id=1, num_rounds=3, node_ids=(5, 9), strategy="FedAvg", config={"lr": 0.1}, timestamp=NOW),
        RoundStarted(run_id=1, round=2, phase="train", node_ids=(5, 9), partition_ids=(0, 1), timestamp=NOW),
        ClientReplied(run_id=1, round=2, phase="train", node_id=5, metrics={"loss": 0.5}, duration_s=1.0,
                      error=Error(code=4, reason="timeout"), partition_id=0, timestamp=NOW),
        ReplyRejected(run_id=1, round=2, phase="evaluate", node_id=9, error=Error(1, "nan"), timestamp=NOW),
        RoundAggregated(run_id=1, round=2, metrics={"acc": [0.1, 0.2]}, num_replies=2, num_failures=0,
                        train_duration_s=1.0, aggregate_duration_s=0.1, timestamp=NOW),
        Evaluated(run_id=1, round=2, source="server", metrics={"acc": float("nan")}, duration_s=0.5, timestamp=NOW),
        StrategyReport(run_id=1, round=2, strategy="FedProx", info={"mu": 0.01}, timestamp=NOW),
        RunFinished(run_id=1, rounds_completed=3, duration_s=9.5, stopped_early=True, error="boom", timestamp=NOW),
    ]  # fmt: skip
    for event in events:
        yield event_to_json(event).encode()


CLIENT_APP = "import fedlab as fl\nfrom {pkg}.task import scale\n\napp = fl.ClientApp()\n"
SERVER_APP = "import fedlab as fl\n\napp = fl.ServerApp()\n"


def built_bundle() -> bytes:
    """A bundle made by build_bundle from a small app project, signed."""
    with tempfile.TemporaryDirectory() as tmp:
        pkg = "corpus_app"
        root = Path(tmp) / pkg
        root.mkdir()
        (root / "__init__.py").write_text("")
        (root / "task.py").write_text("def scale(w, k):\n    return w * k\n")
        (root / "client_app.py").write_text(CLIENT_APP.format(pkg=pkg))
        (root / "server_app.py").write_text(SERVER_APP)
        (root / "settings.json").write_text('{"batch": 32}')
        # The run binding's nonce and expiry, fixed so that the seed is the same every time.
        fixed = (mock.patch("secrets.token_hex", return_value="5eed" * 8),
                 mock.patch("time.time", return_value=BINDING_ISSUED))  # fmt: skip
        try:
            with fixed[0], fixed[1]:
                return build_bundle(f"{pkg}.client_app:app", f"{pkg}.server_app:app", run_config={"rounds": 2},
                                    signing_key=fuzz_bundle.SIGNING_KEY, project_dir=tmp)  # fmt: skip
        finally:
            for name in [m for m in sys.modules if m.partition(".")[0] == pkg]:
                del sys.modules[name]


def bundle_seeds() -> Iterator[bytes]:
    entries = fuzz_bundle._ENTRIES
    yield b"\x00" + fuzz_bundle.valid_bundle()
    yield b"\x00" + built_bundle()
    yield b"\x01" + entries["manifest.json"]
    yield b"\x02" + entries["signature.json"]
    yield b"\x03" + entries["code/app_pkg/client_app.py"]
    yield b"\x04" + b"code/app_pkg/extra.py\0x = 1\n\n../escape\0y"
    yield b"\x05" + entries["manifest.json"]


def _request(message: str, **fields: object) -> bytes:
    return bytes(pb.message_class(message)(**fields).SerializeToString())


def _chunks(data: bytes, pieces: int) -> bytes:
    ref = pb.ObjectRef(digest=hashlib.sha256(data).hexdigest(), size=len(data))
    step = max(1, -(-len(data) // pieces))
    out = b""
    for k, offset in enumerate(range(0, len(data), step)):
        chunk = encode_chunk(Chunk(offset=offset, data=data[offset : offset + step], ref=ref if k == 0 else None))
        out += len(chunk).to_bytes(2, "little") + chunk
    return out


def rpc_seeds() -> Iterator[bytes]:
    with fuzz_rpc.fixed_node_ids():
        world = fuzz_rpc.World()
    try:
        node, run = world.node_id, world.run_id
        reply = Message.from_parts(
            _metadata(run_id=run, src_node_id=node, dst_node_id=0, message_id="ef" * 16,
                      reply_to_message_id=fuzz_rpc.INSTRUCTION_ID),
            content=fuzz_rpc.reply_content(),
        )  # fmt: skip
        reply_wire, _ = split_message(reply, duration_s=0.5)
        failed_wire, _ = split_message(Message.from_parts(reply.metadata, error=Error(5, "out of memory")))
        instruction_wire, _ = split_message(fuzz_rpc.instruction(run, node))
        config = json.dumps({"partition-id": 1, "gpu": True, "name": "n1", "share": 0.5})
        specific: dict[str, list[tuple[int, bytes]]] = {
            "Register": [(0, _request("RegisterRequest", node_config_json=config, heartbeat_interval=30.0))],
            "Heartbeat": [(1, _request("HeartbeatRequest", heartbeat_interval=5.0))],
            "PullInstructions": [(1, _request("PullInstructionsRequest", max_messages=10))],
            "PushReplies": [(1, _request("PushRepliesRequest", messages=[reply_wire, failed_wire]))],
            "PushInstructions": [(2, _request("PushInstructionsRequest", messages=[instruction_wire]))],
            "PushEvents": [(2, _request("PushEventsRequest", events_json=[s.decode() for s in event_seeds()]))],
            "CreateRun": [(64, _request("CreateRunRequest", run_config_json='{"lr": 0.1}', attached=False)),
                          (0, _request("CreateRunRequest", run_config_json="{}", attached=True))],
            "FinishRun": [(2, _request("FinishRunRequest", status="failed", error="stopped by a test"))],
            "StreamEvents": [(2, _request("StreamRequest", follow=True))],
            "StreamLogs": [(2, _request("StreamRequest", after_seq=0))],
            "PullObject": [(9, _request("PullObjectRequest", offset=3))],
            "FetchBundle": [(3, _request("FetchBundleRequest"))],
            "PushObject": [(129, _chunks(b"an object uploaded in three chunks", 3)),
                           (0, _chunks(b"a lying upload", 1)[:-3] + b"xyz")],
            "AddNodeKey": [(0, _request("AddNodeKeyRequest", comment="new-node",
                                        public_key=public_line(_auth.STRANGER_KEY.public_key(), "n2")))],
            "RemoveNodeKey": [(0, _request("RemoveNodeKeyRequest",
                                           fingerprint=fingerprint(_auth.ADDED_KEY.public_key()))),
                              (0, _request("RemoveNodeKeyRequest",
                                           fingerprint=fingerprint(_auth.NODE_KEY.public_key())))],
            "AddUser": [(0, _request("AddUserRequest", name="carol", role="user")),
                        (0, _request("AddUserRequest", name="alice", role="admin"))],
            "RemoveUser": [(0, _request("RemoveUserRequest", name="alice"))],
        }  # fmt: skip
        for index, (service, method) in enumerate(fuzz_rpc.METHODS):
            seeds = specific.get(method.name, [])
            if not method.client_streaming:
                seeds = [*seeds, (0xFF, b""), (0x01 | 0x02 | 0x08 | 0x20, b""), (0x01 | 0x04, b"")]
            for flags, body in seeds:
                yield bytes([index, flags]) + body
            # The authenticated mode: valid credentials (the node's signature, or each role's
            # token; the ServerApp's secret on ServerAppIo), the body of the method's first seed.
            flags, body = seeds[0]
            kinds = [1] if service == "Fleet" else [1, 2, 3] if service == "Control" else [1, 4]
            for kind in kinds:
                yield bytes([index | 0x80, flags | 1, kind, 0]) + body
        # Each forged Fleet credential once (on Heartbeat), and a replay of a valid one.
        index = [m.name for _, m in fuzz_rpc.METHODS].index("Heartbeat")
        body = specific["Heartbeat"][0][1]
        stale = (61 * 4).to_bytes(2, "little", signed=True)
        forged = {0: b"x\0y", 2: b"", 3: (node + 1).to_bytes(8, "little"), 4: b"another body",
                  5: b"00\0" + str(node).encode() + b"\0" + str(NOW).encode() + b"\0" + b"ab" * 16 + b"\0" + b"00" * 64,
                  6: stale, 7: b"\x04" + b"00" * 64}  # fmt: skip
        for kind, material in forged.items():
            yield bytes([index | 0x80, 1, kind, len(material)]) + material + body
        yield bytes([index | 0x80, 1, 1 | 8, 0]) + body
        # Each forged token once (on ListRuns) and the removed user's.
        index = [m.name for _, m in fuzz_rpc.METHODS].index("ListRuns")
        for kind, material in {0: b"", 5: b"not-a-token", 6: b"Basic YWxpY2U6eA==", 7: b"\x01"}.items():
            yield bytes([index | 0x80, 0, kind, len(material)]) + material
    finally:
        world.close()


def _patched_zip(flag_bits: int = 0, method: int | None = None, corrupt: bool = False) -> bytes:
    """The valid bundle with its first entry's header fields changed (both copies)."""
    data = bytearray(fuzz_bundle.valid_bundle())
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    for header, at in ((local, 6), (central, 8)):
        data[header + at] |= flag_bits
        if method is not None:
            data[header + at + 2 : header + at + 4] = method.to_bytes(2, "little")
    if corrupt:  # the deflate stream of manifest.json: a block type that does not exist
        name_len = int.from_bytes(data[local + 26 : local + 28], "little")
        extra_len = int.from_bytes(data[local + 28 : local + 30], "little")
        data[local + 30 + name_len + extra_len] = 0xFF
    return bytes(data)


def regressions() -> Iterator[tuple[str, bytes]]:
    """Inputs that once crashed a decoder (named after what escaped), kept as seeds."""
    deep = b"[" * 3000
    index = {f"{s}.{m.name}": k for k, (s, m) in enumerate(fuzz_rpc.METHODS)}

    def rpc(method: str, flags: int, **fields: object) -> bytes:
        message = fuzz_rpc.METHODS[index[method]][1].input_type.name
        return bytes([index[method], flags]) + _request(message, **fields)

    manifest = json.loads(fuzz_bundle._ENTRIES["manifest.json"])
    manifest["files"]["app_pkg/__init__.py"] = 1
    yield "bundle", b"\x00" + _patched_zip(corrupt=True)  # zlib.error
    yield "bundle", b"\x00" + _patched_zip(flag_bits=1)  # RuntimeError: encrypted
    yield "bundle", b"\x00" + _patched_zip(method=99)  # NotImplementedError
    yield "bundle", b"\x05" + json.dumps(manifest).encode()  # AttributeError
    yield "bundle", b"\x01" + deep  # RecursionError (manifest)
    yield "bundle", b"\x02" + deep  # RecursionError (signature)
    yield "events", deep  # RecursionError
    yield "events", b'{"type": "ClientReplied", "error": {"code": "x"}}'  # ValueError
    yield "events", b'{"type": "ClientReplied", "error": {"code": 1e400}}'  # OverflowError
    big = 2**64 - 1
    yield "rpc", rpc("ServerAppIo.PushEvents", 2, events_json=['{"type": "X", "round": 99999999999999999999}'])
    yield "rpc", rpc("ServerAppIo.PushEvents", 2, events_json=[deep.decode()])
    yield "rpc", rpc("Fleet.Register", 0, node_config_json=deep.decode(), heartbeat_interval=1.0)
    yield "rpc", rpc("Control.CreateRun", 0, run_config_json=deep.decode(), attached=True)
    yield "rpc", rpc("Fleet.Heartbeat", 1, heartbeat_interval=float("nan"))  # IntegrityError
    yield "rpc", rpc("Control.StreamEvents", 2, after_seq=big)  # OverflowError
    yield "rpc", rpc("Control.StreamLogs", 2, after_seq=big)
    yield "rpc", rpc("ServerAppIo.ForgetMessages", 0, run_id=big, message_ids=["x"])
    yield "rpc", rpc("Control.GetRun", 0, run_id=big)  # OverflowError (the run's owner)


def main() -> None:
    """Replace every corpus folder with freshly made seeds and print their sizes."""
    makers = {"codec": codec_seeds, "wire": wire_seeds, "events": event_seeds,
              "bundle": bundle_seeds, "rpc": rpc_seeds}  # fmt: skip
    for target, make in makers.items():
        folder = CORPUS / target
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        seeds = list(make())
        for seed in seeds:
            (folder / f"seed-{hashlib.sha256(seed).hexdigest()[:16]}").write_bytes(seed)
        kept = [data for name, data in regressions() if name == target]
        for data in kept:
            (folder / f"regression-{hashlib.sha256(data).hexdigest()[:16]}").write_bytes(data)
        print(f"{target}: {len(seeds)} seeds and {len(kept)} regressions, "
              f"{sum(map(len, seeds + kept))} bytes")


if __name__ == "__main__":
    main()
