"""Deployment transfer benchmark: a model to N real SuperNodes and back, over loopback.

A SuperLink and N SuperNodes run as separate processes on 127.0.0.1; this process is the
ServerApp (a GrpcGrid). Each round sends one ArrayRecord of SIZE bytes (float32) to every
node; each node replies with the arrays it received. The model is uploaded to the
SuperLink once (the broadcast is stored once), downloaded by each node, uploaded back by
each node and downloaded by the ServerApp, so one round moves ``(1 + 3 N) x SIZE`` bytes
through the SuperLink. Printed per round:

- ``round s``: wall time of ``grid.send_and_receive`` (encode, hash, every transfer,
  the nodes' decode/encode, checksum checks);
- ``payload MB/s``: ``2 N x SIZE / round s``, the model bytes that reached a node or came
  back from one per second (the figure to compare with "send to N nodes and back");
- ``wire MB/s``: ``(1 + 3 N) x SIZE / round s``, every byte through the SuperLink.

Usage::

    python bench/deploy_transfer.py                      # 100 MB, 4 nodes, 3 rounds, memory state
    python bench/deploy_transfer.py --state sqlite       # state and objects on disk (fsync)
    python bench/deploy_transfer.py --mb 2500 --nodes 1  # what deploy_transfer_large.py runs
    python bench/deploy_transfer.py --security both      # TLS + signed requests vs plaintext
    python bench/deploy_transfer.py --security both --mb 0.001 --nodes 10 --per-node 100
                                                         # a 1,000-message small-model round

``--security secure`` runs the SuperLink with TLS (``fedlab certs`` files), an allow-list
of node keys and an admin token, and every SuperNode signs every request: what a real
deployment pays. ``both`` runs plaintext, then secure, and prints the ratio.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def echo_app():  # type: ignore[no-untyped-def]
    """The SuperNodes' ClientApp: reply with the arrays received (imported via --app)."""
    from fedlab import ClientApp
    from fedlab.records import MetricRecord, RecordDict

    app = ClientApp()

    @app.train()
    def train(msg, ctx):  # type: ignore[no-untyped-def]
        return msg.reply(RecordDict({"arrays": msg.content["arrays"],
                                     "metrics": MetricRecord({"num-examples": 1})}))  # fmt: skip

    return app


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, *args], stdout=out, stderr=subprocess.STDOUT,
                                cwd=REPO, env=env)  # fmt: skip


def _wait_for(log: Path, pattern: str, timeout: float = 120.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text(errors="replace"))
        if found:
            return found
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {pattern!r} in {log}:\n{log.read_text()[-2000:]}")


def _sha256(array: object) -> str:
    import hashlib

    return hashlib.sha256(array.data).hexdigest()  # type: ignore[attr-defined]


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _credentials(work: Path, nodes: int, secure: bool) -> tuple[list[str], list[list[str]], object]:
    """SuperLink arguments, each SuperNode's arguments, and the client's ClientSecurity."""
    from fedlab.deploy.security import INSECURE, ClientSecurity
    from fedlab.deploy.security.keys import write_key_pair
    from fedlab.deploy.security.tls import make_dev_certs

    if not secure:
        return ["--insecure"], [["--insecure"]] * nodes, INSECURE
    certs = make_dev_certs(work / "certs")
    publics = [write_key_pair(work / f"node-{i}")[1] for i in range(nodes)]
    (work / "allowed.pub").write_text("".join(p.read_text() for p in publics))
    (work / "admin.token").write_text("bench-admin-token\n")
    link = ["--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key),
            "--node-keys", str(work / "allowed.pub"), "--admin-token-file", str(work / "admin.token")]  # fmt: skip
    node_args = [["--root-cert", str(certs.ca_cert), "--node-key", str(work / f"node-{i}.key")] for i in range(nodes)]
    return link, node_args, ClientSecurity(root_certificates=certs.ca_cert.read_bytes(), token="bench-admin-token")


def run(mb: float, nodes: int, rounds: int, state: str, *, secure: bool = False, per_node: int = 1) -> float:
    """Run the benchmark, print one line per round and a summary; return the median round (s)."""
    import numpy as np

    from fedlab.deploy import ControlClient, GrpcGrid
    from fedlab.records import ArrayRecord, ConfigRecord, RecordDict

    size = int(mb * 1e6) // 4 * 4
    work = Path(tempfile.mkdtemp(prefix="fedlab-bench-"))
    state_args = ["--state", "memory"] if state == "memory" else ["--state-dir", str(work / "state")]
    if secure and state == "memory":
        state_args += ["--admin-token-file", str(work / "admin.token")]
    link_args, node_args, security = _credentials(work, nodes, secure)
    if secure:
        link_args = link_args[:-2]  # the admin token file is in state_args
    procs = []
    try:
        link_log = work / "superlink.log"
        procs.append(_spawn(["-m", "fedlab.deploy.superlink", *link_args, *state_args,
                             "--fleet-address", "127.0.0.1:0", "--serverappio-address", "127.0.0.1:0",
                             "--control-address", "127.0.0.1:0"], link_log))  # fmt: skip
        fleet, serverappio, control_address = _wait_for(
            link_log, r"superlink ready fleet=(\S+) serverappio=(\S+) control=(\S+)"
        ).groups()
        for index in range(nodes):
            procs.append(_spawn(["-m", "fedlab.deploy.supernode", *node_args[index], "--superlink", fleet,
                                 "--node-config", f"partition-id={index}",
                                 "--app", "bench.deploy_transfer:echo_app"],
                                work / f"supernode-{index}.log"))  # fmt: skip
        control = ControlClient(control_address, security=security)  # type: ignore[arg-type]
        control.wait_for_nodes(nodes, timeout=120)
        run_id = control.create_run(b"", {}, attached=True)
        grid = GrpcGrid(serverappio, run_id, forward_events=False, security=security)  # type: ignore[arg-type]
        model = ArrayRecord({"w": np.random.default_rng(0).random(size // 4, dtype=np.float32)})
        expected = _sha256(model["w"])
        print(f"model {size / 1e6:g} MB to {nodes} SuperNode(s) x {per_node} message(s) and back, {state} "
              f"state, {'TLS + signed requests' if secure else 'plaintext'}, {rounds} round(s)")  # fmt: skip
        times = []
        for rnd in range(1, rounds + 1):
            messages = [
                grid.create_message(RecordDict({"arrays": model, "config": ConfigRecord()}), "train", node, str(rnd))
                for node in grid.get_node_ids()
                for _ in range(per_node)
            ]
            started = time.perf_counter()
            replies = grid.send_and_receive(messages, timeout=3600)
            elapsed = time.perf_counter() - started
            assert all(r.has_content() for r in replies), [r.error for r in replies]
            # Compared by hash: Array equality would copy each multi-GB reply once more.
            assert all(_sha256(r.content["arrays"]["w"]) == expected for r in replies)
            count = len(messages)
            del replies, messages
            times.append(elapsed)
            print(f"round {rnd}: {elapsed:6.2f} s   payload {2 * nodes * size / 1e6 / elapsed:7.1f} MB/s"
                  f"   wire {(1 + 3 * nodes) * size / 1e6 / elapsed:7.1f} MB/s   "
                  f"{count / elapsed:7.0f} messages/s")  # fmt: skip
        grid.close()
        control.finish_run(run_id, "completed")
        best, median = min(times), statistics.median(times)
        print(f"median round {median:.2f} s: payload {2 * nodes * size / 1e6 / median:.1f} MB/s, "
              f"wire {(1 + 3 * nodes) * size / 1e6 / median:.1f} MB/s (best {2 * nodes * size / 1e6 / best:.1f} "
              "MB/s payload)")  # fmt: skip
        peaks = ", ".join(f"{_peak_rss_mb(p.pid):.0f}" for p in procs[1:])
        print(f"peak RSS MB: this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}, "
              f"SuperLink {_peak_rss_mb(procs[0].pid):.0f}, SuperNodes {peaks}")  # fmt: skip
        control.close()
        return median
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run(["rm", "-rf", str(work)], check=False)


def main(
    argv: list[str] | None = None,
    *,
    mb: float = 100.0,
    nodes: int = 4,
    rounds: int = 3,
    state: str = "memory",
    description: str | None = None,
) -> None:
    """Parse the command line (defaults as given) and run the benchmark."""
    parser = argparse.ArgumentParser(description=description or __doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=mb, help="model size in MB (10^6 bytes)")
    parser.add_argument("--nodes", type=int, default=nodes)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--state", choices=["memory", "sqlite"], default=state)
    parser.add_argument("--security", choices=["insecure", "secure", "both"], default="insecure",
                        help="plaintext, TLS with signed node requests, or both side by side")  # fmt: skip
    parser.add_argument("--per-node", type=int, default=1, help="messages to each node per round")
    args = parser.parse_args(argv)
    medians = {}
    for secure in {"insecure": [False], "secure": [True], "both": [False, True]}[args.security]:
        medians[secure] = run(args.mb, args.nodes, args.rounds, args.state, secure=secure, per_node=args.per_node)
    if len(medians) == 2:
        print(f"secure / plaintext median round: {medians[True] / medians[False]:.2f}x "
              f"({medians[False]:.3f} s -> {medians[True]:.3f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
