"""The deployment data path side by side: fedlab's public path, a bare-grpcio floor, Flower.

One workload everywhere: a float32 model of random values (``--size-mb``, default 100 MB),
4 SuperNodes (``--nodes``) on loopback, each adds 1.0 to every value and replies (so every
reply is distinct: nothing is skipped as already stored), FedAvg, 3 rounds; the figure is
the median of rounds 2-3. Payload per round = 2 x size x nodes.

- ``fedlab``: a SuperLink and the SuperNodes as processes, this benchmark's child process
  is the ServerApp calling ``Federation(...).deploy(control_address, ...)`` (the public
  path, the bundle shipped and run by the nodes' ClientApp processes). Memory and SQLite
  (``--state-dir``, fsync) state; TLS + signed node requests + signed bundle, or plaintext.
  Round time = the History's train + aggregate durations.
- ``floor``: bare grpcio, raw bytes, 4 MiB chunks each way, 1 server + N client processes;
  each client pulls the model, adds 1.0 and pushes it back, the server sums the replies in
  float64 and divides. No framework, no hashing, no storage.
- ``flower``: Flower 1.42 (``flwr run`` against a local ``flower-superlink`` and N
  ``flower-supernode`` processes, same app), from ``/tmp/flwr-venv``; ``--skip-flower``.

Then a per-stage profile: each stage fedlab's path performs, timed in this process on the
same model with fedlab's own functions, times how often one round performs it (memory and
SQLite state): CPU seconds per round spread over the processes, so what one round costs
the machine. Peak RSS (VmHWM) of every process is printed after each run.

    python bench/deploy_path.py                         # 100 MB, everything
    python bench/deploy_path.py --size-mb 20 --skip-flower
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FLOWER_PY = Path("/tmp/flwr-venv/bin/python")
CHUNK = 4 * 2**20


# -- the ClientApp every fedlab run ships ------------------------------------------------


from fedlab import ClientApp
from fedlab.records import ArrayRecord, MetricRecord, RecordDict

client_app = ClientApp()


@client_app.train()
def _train(msg, ctx):  # type: ignore[no-untyped-def]
    received = msg.content["arrays"]
    arrays = ArrayRecord({key: received[key].numpy() + 1.0 for key in received})
    return msg.reply(RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": 1})}))


# -- helpers ------------------------------------------------------------------------------


def _spawn(
    args: list[str], log: Path, python: str = sys.executable, env: dict[str, str] | None = None
) -> Any:
    env = dict(env or os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    with open(log, "wb") as out:
        return subprocess.Popen(
            [python, *args], stdout=out, stderr=subprocess.STDOUT, cwd=log.parent, env=env
        )


def _wait_for(log: Path, pattern: str, timeout: float = 120.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text(errors="replace"))
        if found:
            return found
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {pattern!r} in {log}:\n{log.read_text()[-3000:]}")


def _hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            child = int(stat.parent.name)
            out += [child, *_children(child)]
    return out


def _stop(procs: list[Any]) -> None:
    for proc in reversed(procs):
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _median_23(times: list[float]) -> float:
    return statistics.median(times[1:3] if len(times) >= 3 else times)


# -- fedlab's public path -----------------------------------------------------------------


def run_fedlab(size_mb: float, nodes: int, rounds: int, state: str, secure: bool) -> dict[str, Any]:
    """One fedlab run (call in a fresh process: its peak RSS is the ServerApp's)."""
    import numpy as np
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    import fedlab as fl
    from fedlab.deploy.security.keys import write_key_pair
    from fedlab.deploy.security.tls import make_dev_certs
    from fedlab.strategy import FedAvg

    work = Path(tempfile.mkdtemp(prefix="fedlab-path-"))
    link = ["--fleet-address", "127.0.0.1:0", "--serverappio-address", "127.0.0.1:0",
            "--control-address", "127.0.0.1:0"]  # fmt: skip
    link += ["--state", "memory"] if state == "memory" else ["--state-dir", str(work / "state")]
    node_args: list[list[str]] = []
    options: dict[str, Any] = {"insecure": True}
    if secure:
        certs = make_dev_certs(work / "certs")
        publics = [write_key_pair(work / f"node-{i}")[1] for i in range(nodes)]
        (work / "allowed.pub").write_text("".join(p.read_text() for p in publics))
        (work / "admin.token").write_text("bench-admin-token\n")
        signing = Ed25519PrivateKey.generate()
        trusted = work / "trusted.pem"
        trusted.write_bytes(
            signing.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        )
        link += ["--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key),
                 "--node-keys", str(work / "allowed.pub"), "--admin-token-file", str(work / "admin.token")]  # fmt: skip
        node_args = [["--root-cert", str(certs.ca_cert), "--node-key", str(work / f"node-{i}.key"),
                      "--trusted-key", str(trusted)] for i in range(nodes)]  # fmt: skip
        options = {
            "root_cert": certs.ca_cert,
            "token_file": work / "admin.token",
            "signing_key": signing,
        }
    else:
        link += ["--insecure", "--insecure-allow-unsigned"]
        node_args = [["--insecure", "--insecure-allow-unsigned"]] * nodes
    procs = []
    try:
        procs.append(_spawn(["-m", "fedlab.deploy.superlink", *link], work / "superlink.log"))
        fleet, _, control = _wait_for(
            work / "superlink.log", r"superlink ready fleet=(\S+) serverappio=(\S+) control=(\S+)"
        ).groups()
        for index in range(nodes):
            procs.append(_spawn(["-m", "fedlab.deploy.supernode", "--superlink", fleet,
                                 "--node-config", f"partition-id={index}", *node_args[index]],
                                work / f"supernode-{index}.log"))  # fmt: skip
        size = int(size_mb * 1e6) // 4
        model = np.random.default_rng(0).random(size, dtype=np.float32)
        strategy = FedAvg(fraction_evaluate=0.0, min_train_nodes=nodes, min_available_nodes=nodes)
        fed = fl.Federation(
            client_app, strategy, initial_arrays={"w": model}, display="none", timeout=3600
        )
        del model
        result = fed.deploy(control, rounds=rounds, startup_timeout=300, **options)
        hist = result.history
        assert hist is not None and hist.rounds_completed == rounds, hist
        times = [
            r["train_duration_s"] + (r["aggregate_duration_s"] or 0.0)
            for r in hist.rounds
            if r["round"] >= 1
        ]
        value = float(result.arrays.to_numpy()[0][0])
        import resource

        rss = {
            "ServerApp": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "SuperLink": _hwm_mb(procs[0].pid),
            "SuperNode": max(_hwm_mb(p.pid) for p in procs[1:]),
        }
        apps = [c for p in procs[1:] for c in _children(p.pid)]
        if apps:
            rss["ClientApp"] = max(_hwm_mb(c) for c in apps)
        return {"times": times, "rss": rss, "check": value}
    finally:
        _stop(procs)
        shutil.rmtree(work, ignore_errors=True)


# -- the bare-grpcio floor ----------------------------------------------------------------


def floor_server(size_mb: float, nodes: int, rounds: int) -> None:
    """The floor's server: serves the model, gathers the replies, averages (prints JSON)."""
    import threading
    from concurrent import futures

    import grpc
    import numpy as np

    size = int(size_mb * 1e6) // 4
    model = np.random.default_rng(0).random(size, dtype=np.float32)
    ready = threading.Condition()
    current = {"round": 0, "blob": b""}
    replies: list[bytes] = []

    def pull(request: bytes, context: Any) -> Any:
        wanted = int(request)
        with ready:
            ready.wait_for(lambda: current["round"] >= wanted)
            blob = current["blob"]
        view = memoryview(blob)
        for start in range(0, len(view), CHUNK):
            yield bytes(view[start : start + CHUNK])

    def push(chunks: Any, context: Any) -> bytes:
        data = b"".join(chunks)
        with ready:
            replies.append(data)
            ready.notify_all()
        return b""

    handler = grpc.method_handlers_generic_handler("floor", {
        "Pull": grpc.unary_stream_rpc_method_handler(pull),
        "Push": grpc.stream_unary_rpc_method_handler(push),
    })  # fmt: skip
    opts = [
        ("grpc.max_receive_message_length", 2 * CHUNK),
        ("grpc.max_send_message_length", 2 * CHUNK),
    ]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2 * nodes + 2), options=opts)
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"floor ready port={port}", flush=True)
    times = []
    for rnd in range(1, rounds + 1):
        started = time.perf_counter()
        with ready:
            replies.clear()
            current.update(round=rnd, blob=model.tobytes())
            ready.notify_all()
            ready.wait_for(lambda: len(replies) == nodes)
            got = list(replies)
        total = np.zeros(size, np.float64)
        for blob in got:
            total += np.frombuffer(blob, np.float32)
        model = (total / nodes).astype(np.float32)
        times.append(time.perf_counter() - started)
    print("RESULT " + json.dumps({"times": times, "check": float(model[0])}), flush=True)
    time.sleep(1.0)
    server.stop(0)


def floor_client(port: int, rounds: int) -> None:
    """The floor's client: pull, add 1.0, push, for each round."""
    import grpc
    import numpy as np

    opts = [
        ("grpc.max_receive_message_length", 2 * CHUNK),
        ("grpc.max_send_message_length", 2 * CHUNK),
    ]
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=opts)
    pull = channel.unary_stream("/floor/Pull")
    push = channel.stream_unary("/floor/Push")
    for rnd in range(1, rounds + 1):
        blob = b"".join(pull(str(rnd).encode()))
        reply = (np.frombuffer(blob, np.float32) + np.float32(1.0)).tobytes()
        view = memoryview(reply)
        push(bytes(view[s : s + CHUNK]) for s in range(0, len(view), CHUNK))
    time.sleep(2.0)  # the server reads our peak RSS


def run_floor(size_mb: float, nodes: int, rounds: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="fedlab-floor-"))
    me = str(Path(__file__).resolve())
    procs = []
    try:
        procs.append(_spawn([me, "--role", "floor-server", "--size-mb", str(size_mb), "--nodes", str(nodes),
                             "--rounds", str(rounds)], work / "server.log"))  # fmt: skip
        port = _wait_for(work / "server.log", r"floor ready port=(\d+)").group(1)
        for index in range(nodes):
            procs.append(_spawn([me, "--role", "floor-client", "--port", port, "--rounds", str(rounds)],
                                work / f"client-{index}.log"))  # fmt: skip
        found = _wait_for(work / "server.log", r"RESULT (.*)", timeout=3600)
        out = json.loads(found.group(1))
        out["rss"] = {
            "server": _hwm_mb(procs[0].pid),
            "client": max(_hwm_mb(p.pid) for p in procs[1:]),
        }
        return out
    finally:
        _stop(procs)
        shutil.rmtree(work, ignore_errors=True)


# -- Flower 1.42 ---------------------------------------------------------------------------

FLOWER_APP = """
import time, json, numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

client = ClientApp()

@client.train()
def train(msg: Message, context: Context) -> Message:
    arrays = msg.content["arrays"].to_numpy_ndarrays()
    reply = ArrayRecord([a + np.float32(1.0) for a in arrays])
    return Message(RecordDict({"arrays": reply, "metrics": MetricRecord({"num-examples": 1})}), reply_to=msg)

server = ServerApp()

class Timed(FedAvg):
    def configure_train(self, server_round, arrays, config, grid):
        self._t = time.perf_counter()
        return super().configure_train(server_round, arrays, config, grid)
    def aggregate_train(self, server_round, replies):
        out = super().aggregate_train(server_round, replies)
        with open("@TIMES@", "a") as f:
            f.write(json.dumps(time.perf_counter() - self._t) + "\\n")
        return out

@server.main()
def main(grid: Grid, context: Context) -> None:
    size = int(context.run_config["size"])
    model = np.random.default_rng(0).random(size, dtype=np.float32)
    nodes = int(context.run_config["nodes"])
    Timed(fraction_evaluate=0.0, min_train_nodes=nodes, min_available_nodes=nodes).start(
        grid=grid, initial_arrays=ArrayRecord([model]), num_rounds=int(context.run_config["rounds"]))
"""

FLOWER_TOML = """
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "pathbench"
version = "1.0.0"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["pathbench"]

[tool.flwr.app]
publisher = "bench"

[tool.flwr.app.components]
serverapp = "pathbench.app:server"
clientapp = "pathbench.app:client"

[tool.flwr.app.config]
size = @SIZE@
nodes = @NODES@
rounds = @ROUNDS@
"""


def run_flower(size_mb: float, nodes: int, rounds: int) -> dict[str, Any]:
    """Flower 1.42's deployment runtime on the same workload (plaintext, in-memory-ish state)."""
    work = Path(tempfile.mkdtemp(prefix="flwr-path-"))
    flwr_bin = FLOWER_PY.parent
    env = dict(
        os.environ,
        FLWR_TELEMETRY_ENABLED="0",
        HOME=str(work),
        FLWR_HOME=str(work / ".flwr"),
        PATH=f"{flwr_bin}:{os.environ.get('PATH', '')}",
    )
    env.pop("PYTHONPATH", None)
    procs = []
    try:
        app = work / "project"
        (app / "pathbench").mkdir(parents=True)
        (app / "pathbench" / "__init__.py").write_text("")
        times_file = work / "times.jsonl"
        (app / "pathbench" / "app.py").write_text(FLOWER_APP.replace("@TIMES@", str(times_file)))
        (app / "pyproject.toml").write_text(FLOWER_TOML.replace("@SIZE@", str(int(size_mb * 1e6) // 4))
                                            .replace("@NODES@", str(nodes)).replace("@ROUNDS@", str(rounds)))  # fmt: skip
        ports = _free_ports(1 + nodes)
        link_cmd = [str(flwr_bin / "flower-superlink"), "--insecure", "--disable-runtime-dependency-installation",
                    "--host", "127.0.0.1", "--port", str(ports[0])]  # fmt: skip
        procs.append(_spawn_bin(link_cmd, work / "superlink.log", env))
        _wait_for(work / "superlink.log", r"Uvicorn running|Starting Flower SuperExec")
        for index in range(nodes):
            cmd = [str(flwr_bin / "flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{ports[0]}",
                   "--host", "127.0.0.1", "--port", str(ports[1 + index]),
                   "--node-config", f"partition-id={index}"]  # fmt: skip
            procs.append(_spawn_bin(cmd, work / f"supernode-{index}.log", env))
        config = work / ".flwr" / "config.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(f'[superlink.bench]\naddress = "127.0.0.1:{ports[0]}"\ninsecure = true\n')
        time.sleep(3.0)
        done = subprocess.run([str(flwr_bin / "flwr"), "run", str(app), "bench", "--stream"], cwd=work, env=env,
                              capture_output=True, text=True, timeout=3600)  # fmt: skip
        lines = times_file.read_text().split() if times_file.exists() else []
        if len(lines) < rounds:
            tail = (done.stdout + done.stderr)[-2000:] + (work / "superlink.log").read_text(
                errors="replace"
            )[-2000:]
            return {"error": tail}
        rss = {"SuperLink+": max(_hwm_mb(c) for c in [procs[0].pid, *_children(procs[0].pid)]),
               "SuperNode+": max(_hwm_mb(c) for p in procs[1:] for c in [p.pid, *_children(p.pid)])}  # fmt: skip
        return {"times": [json.loads(x) for x in lines], "rss": rss}
    finally:
        for proc in procs:  # Flower's processes start their own children
            for child in _children(proc.pid):
                try:
                    os.kill(child, 15)
                except OSError:
                    pass
        _stop(procs)
        shutil.rmtree(work, ignore_errors=True)


def _spawn_bin(cmd: list[str], log: Path, env: dict[str, str]) -> Any:
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent, env=env)


def _free_ports(count: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(count)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for sock in socks:
        sock.close()
    return ports


# -- the per-stage profile ---------------------------------------------------------------


def profile(size_mb: float, nodes: int) -> dict[str, dict[str, float]]:
    """Seconds per call of each stage, and calls per round, on fedlab's path."""
    import hashlib

    import numpy as np

    from fedlab.deploy.superlink.objects import DirectoryObjectStore, MemoryObjectStore
    from fedlab.deploy.transport.chunks import decode_chunk, encode_chunk
    from fedlab.deploy.transport.transfer import Assembler, iter_chunks, object_ref
    from fedlab.records import ArrayRecord, RecordDict
    from fedlab.wire.codec import decode_record_dict, encode_record_dict

    size = int(size_mb * 1e6) // 4
    arr = np.random.default_rng(0).random(size, dtype=np.float32)
    content = RecordDict({"arrays": ArrayRecord({"w": arr})})

    def timed(fn: Any, repeat: int = 3) -> float:
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - started)
        return best

    blob = encode_record_dict(content)
    ref = object_ref(blob)
    wire_chunks = [encode_chunk(c) for c in iter_chunks(blob, ref)]
    stage: dict[str, float] = {}
    stage["serialise"] = timed(lambda: encode_record_dict(content))
    stage["hash"] = timed(lambda: hashlib.sha256(blob).hexdigest())
    stage["chunk"] = timed(lambda: [encode_chunk(c) for c in iter_chunks(blob, ref)])

    def store_memory() -> None:
        store = MemoryObjectStore()
        writer = store.writer(ref.digest, ref.size)
        for raw in wire_chunks:
            c = decode_chunk(raw)
            writer._write(c.data)  # the copy only; the sha256 is the "hash" stage
        writer.received = ref.size

    stage["store (memory)"] = timed(store_memory)
    tmp = Path(tempfile.mkdtemp(prefix="fedlab-prof-"))
    try:

        def store_file(sync: bool) -> None:
            path = tmp / "obj"
            with open(path, "wb") as f:
                f.writelines(decode_chunk(raw).data for raw in wire_chunks)
                if sync:
                    f.flush()
                    os.fsync(f.fileno())
            path.unlink()

        stage["store (file)"] = timed(lambda: store_file(False))
        stage["fsync"] = max(0.0, timed(lambda: store_file(True)) - stage["store (file)"])
        dstore = DirectoryObjectStore(tmp / "objects")
        dstore.put(blob)
        stage["read (file)"] = timed(lambda: [bytes(b) for b in dstore.read(ref.digest, 0, CHUNK)])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def assemble() -> None:
        asm = Assembler(ref)
        for raw in wire_chunks:
            c = decode_chunk(raw)
            asm._buffer.write(c.data)  # the copy only; the sha256 is the "hash" stage
        asm._buffer.getvalue()

    stage["assemble"] = timed(assemble)
    stage["pipe to ClientApp"] = timed(lambda: _pipe_roundtrip(blob), repeat=1)
    stage["decode"] = timed(lambda: decode_record_dict(blob))
    stage["transfer (gRPC)"] = _grpc_transfer(blob)
    stage["client +1.0"] = timed(lambda: arr + 1.0)

    def aggregate() -> None:  # FedAvg's work: a float64 weighted sum, then the cast back
        total = np.zeros(size, np.float64)
        for _ in range(nodes):
            total += arr * 1.0
        (total / nodes).astype(np.float32)

    stage["aggregate"] = timed(aggregate, repeat=1)
    n = nodes
    # Calls per round: ServerApp encodes the broadcast once, nodes each encode a reply.
    counts = {
        "serialise": 1 + n,
        "hash": 1 + 1 + n + n + n + n,  # ServerApp ref, SuperLink verify, node verify,
        # node reply ref, SuperLink verify of replies, ServerApp verify of replies
        "chunk": 1 + n + n + n,  # up, down to nodes, replies up, replies down
        "store (memory)": 1 + n,
        "store (file)": 1 + n,
        "fsync": 1 + n,
        "read (file)": n + n,
        "assemble": n + n,
        "pipe to ClientApp": 2 * n,  # the instruction in, the reply out
        "decode": n + n,
        "transfer (gRPC)": 1 + 3 * n,
        "client +1.0": n,
        "aggregate": 1,
    }
    return {"seconds": stage, "counts": {k: float(v) for k, v in counts.items()}}


def _pipe_roundtrip(blob: bytes) -> None:
    """One frame of ``blob`` through a pipe (node → ClientApp process), with the runner's frame code."""
    import threading

    from fedlab.deploy.supernode.runner import read_frame, write_frame

    rfd, wfd = os.pipe()
    reader, writer = os.fdopen(rfd, "rb"), os.fdopen(wfd, "wb")
    out: list[bytes] = []
    thread = threading.Thread(target=lambda: out.append(read_frame(reader)[1]))
    thread.start()
    write_frame(writer, b"M", blob)
    writer.close()
    thread.join()
    reader.close()


def _grpc_transfer(blob: bytes) -> float:
    """Seconds to stream ``blob`` in 4 MiB chunks over an in-process loopback gRPC call."""
    from concurrent import futures

    import grpc

    view = memoryview(blob)

    def pull(request: bytes, context: Any) -> Any:
        for start in range(0, len(view), CHUNK):
            yield bytes(view[start : start + CHUNK])

    handler = grpc.method_handlers_generic_handler(
        "p", {"Pull": grpc.unary_stream_rpc_method_handler(pull)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    call = channel.unary_stream("/p/Pull")
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _piece in call(b""):
            pass
        best = min(best, time.perf_counter() - started)
    channel.close()
    server.stop(0)
    return best


# -- the driver -----------------------------------------------------------------------------


def _child(kind: str, args: argparse.Namespace, *extra: str) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--role", kind, "--size-mb", str(args.size_mb),
           "--nodes", str(args.nodes), "--rounds", str(args.rounds), *extra]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, cwd=REPO, timeout=3600)
    found = re.search(r"^RESULT (.*)$", done.stdout, re.MULTILINE)
    if not found:
        return {"error": (done.stdout + done.stderr)[-3000:]}
    return dict(json.loads(found.group(1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=100.0)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-flower", action="store_true")
    parser.add_argument("--skip-profile", action="store_true")
    parser.add_argument(
        "--only", default="", help="comma-separated subset: floor,memory,sqlite,flower"
    )
    parser.add_argument("--role", default="", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--state", default="memory", help=argparse.SUPPRESS)
    parser.add_argument("--secure", default="1", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "floor-server":
        return floor_server(args.size_mb, args.nodes, args.rounds)
    if args.role == "floor-client":
        return floor_client(args.port, args.rounds)
    if args.role == "fedlab":
        out = run_fedlab(args.size_mb, args.nodes, args.rounds, args.state, args.secure == "1")
        print("RESULT " + json.dumps(out), flush=True)
        return None
    if args.role == "floor":
        print("RESULT " + json.dumps(run_floor(args.size_mb, args.nodes, args.rounds)), flush=True)
        return None
    if args.role == "flower":
        print("RESULT " + json.dumps(run_flower(args.size_mb, args.nodes, args.rounds)), flush=True)
        return None

    only = set(filter(None, args.only.split(","))) or {"floor", "memory", "sqlite", "flower"}
    if args.skip_flower or not FLOWER_PY.exists():
        only.discard("flower")
    payload_mb = 2 * args.size_mb * args.nodes
    print(f"model {args.size_mb:g} MB float32, {args.nodes} nodes, +1.0 distinct replies, FedAvg, "
          f"{args.rounds} rounds, median of rounds 2-3; payload {payload_mb:g} MB per round")  # fmt: skip
    results: dict[str, dict[str, Any]] = {}
    if "floor" in only:
        results["bare grpcio floor"] = _child("floor", args)
    for state in ("memory", "sqlite"):
        if state in only:
            for secure in ("1", "0"):
                label = f"fedlab {state}, {'TLS + signing' if secure == '1' else 'plaintext'}"
                results[label] = _child("fedlab", args, "--state", state, "--secure", secure)
    if "flower" in only:
        results["Flower 1.42 (flwr run)"] = _child("flower", args)
    _table(results, payload_mb)
    if not args.skip_profile:
        _print_profile(profile(args.size_mb, args.nodes))


def _table(results: dict[str, dict[str, Any]], payload_mb: float) -> None:
    rounds = {k: _median_23(v["times"]) for k, v in results.items() if "times" in v}
    floor = rounds.get("bare grpcio floor")
    flower = next((v for k, v in rounds.items() if k.startswith("Flower")), None)
    print("\n| path | round s | payload MB/s | vs floor rate | vs Flower | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for label, res in results.items():
        if "times" not in res:
            print(f"| {label} | failed | | | | |\n{res.get('error', '')[-1500:]}")
            continue
        sec = rounds[label]
        to_floor = f"{floor / sec:.2f}x" if floor else "-"
        to_flower = f"{flower / sec:.1f}x" if flower else "-"
        rss = ", ".join(f"{k} {v:.0f}" for k, v in res.get("rss", {}).items())
        print(
            f"| {label} | {sec:.2f} | {payload_mb / sec:,.0f} | {to_floor} | {to_flower} | {rss} |"
        )


def _print_profile(prof: dict[str, dict[str, float]]) -> None:
    seconds, counts = prof["seconds"], prof["counts"]
    memory_stages = ["serialise", "hash", "chunk", "store (memory)", "transfer (gRPC)", "assemble",
                     "pipe to ClientApp", "decode", "client +1.0", "aggregate"]  # fmt: skip
    sqlite_stages = [*memory_stages[:3], "store (file)", "fsync", "read (file)", *memory_stages[4:]]
    print("\nper-stage profile (CPU seconds per round, summed over processes; one call timed here)")
    print("| stage | s per call | calls/round | memory s/round | SQLite s/round |")
    print("|---|---|---|---|---|")
    totals = [0.0, 0.0]
    for name in dict.fromkeys(memory_stages + sqlite_stages):
        per = seconds[name] * counts[name]
        mem = per if name in memory_stages else 0.0
        sql = per if name in sqlite_stages else 0.0
        totals[0] += mem
        totals[1] += sql
        print(f"| {name} | {seconds[name]:.3f} | {counts[name]:.0f} | {mem:.2f} | {sql:.2f} |")
    print(f"| total | | | {totals[0]:.2f} | {totals[1]:.2f} |")


if __name__ == "__main__":
    main()
