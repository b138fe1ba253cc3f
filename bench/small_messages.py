"""Small-message rounds through the real deployment Fleet API: rounds/s and RPCs per message.

A SuperLink process (``LocalCluster``: loopback, SQLite state in its directory,
``--insecure``) and an in-process pool of real :class:`~fedlab.deploy.supernode.SuperNode`
objects, one thread each, every one with its own gRPC channel to the Fleet API and a pinned
ClientApp (``app=``, so no ClientApp process per node: 1,000 node processes do not fit a
small machine). The ServerApp is this process: ``Federation(...).deploy(control_address)``
with FedAvg over every node, a 1k-parameter float32 model, one train message per node per
round, no federated evaluation.

Every RPC is counted by a client interceptor on each channel: the nodes' Fleet calls
(Heartbeat and Register apart, they do not depend on messages) and the ServerApp's
ServerAppIo calls. "RPCs per message" = (Fleet + ServerAppIo RPCs of the measured rounds)
/ messages (one instruction out and its reply back count as one message).

    python bench/small_messages.py                    # 100 and 1,000 nodes, 3 rounds each
    python bench/small_messages.py --nodes 100 --rounds 5
    python bench/small_messages.py --nodes 100 1000 --nodes-per-channel 50 --state sqlite memory

Measured (2-core machine shared with other work, so inflated), before any change:
20 nodes 3.7 rounds/s; 100 nodes 0.16 rounds/s; 1,000 nodes do not all register (the
SuperLink answers RESOURCE_EXHAUSTED: every node's 10 s PullInstructions long poll holds
one of the Fleet server's 64 threads, and the server admits 4 x 64 concurrent RPCs). About
6 RPCs per message: PullInstructions, PullObject, FindMissingObjects, PushObject and
PushReplies on the node, ~1.2 ServerAppIo calls (mostly the per-reply PullObject).

After keyed long polls (a waiter per node, not one shared condition), contents up to 64 KiB
inside their messages, reply waits keyed by run and liveness written at most once a second:
2.0-2.1 RPCs per message (PullInstructions and PushReplies per node, ~0.1 ServerAppIo).
On a 2-core machine, SQLite state:

    100 nodes    3.1 rounds/s   (--nodes-per-channel 50; 2.7-2.9 with a channel per node)
    1,000 nodes  0.26 rounds/s  (--nodes-per-channel 50; 0.06-0.09 with a channel per node)

Memory state gives the same rounds/s within noise (300 nodes: 1.00 vs 0.80-0.99), so
durability is not the limit. At 1,000 nodes the in-process pool is: with a channel per
node it spends 1.3-1.5 CPU-s/s, mostly in the kernel, on 2-3k threads, while the SuperLink
uses about 0.25 CPU-s/s. Sharing a channel among 50 pooled nodes cuts the pool's threads;
each node still makes its own calls (real node processes each have their own channel).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import itertools
import logging
import threading
import time
from typing import Any

import grpc
import numpy as np

import fedlab as fl
from fedlab.deploy.client import grpcgrid
from fedlab.deploy.local._cluster import LocalCluster
from fedlab.deploy.security import INSECURE
from fedlab.deploy.supernode import node as node_module
from fedlab.deploy.supernode.node import SuperNode
from fedlab.strategy import FedAvg

PARAMS = 1000


class Counter(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
              grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):  # fmt: skip
    """Counts every RPC by method name (thread-safe)."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def _count(self, details: Any) -> None:
        with self._lock:
            self.counts[details.method.rsplit("/", 1)[-1]] += 1

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self._count(details)
        return continuation(details, request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        self._count(details)
        return continuation(details, request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        self._count(details)
        return continuation(details, requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        self._count(details)
        return continuation(details, requests)

    def snapshot(self) -> collections.Counter[str]:
        with self._lock:
            return collections.Counter(self.counts)


def client_app() -> fl.ClientApp:
    app = fl.ClientApp()

    @app.train()
    def train(msg: fl.Message, ctx: fl.Context) -> fl.Message:
        w = msg.content.array_record("arrays").to_numpy()[0] + 1.0
        return msg.reply(fl.RecordDict({"arrays": fl.ArrayRecord([w]),
                                        "metrics": fl.MetricRecord({"num-examples": 1})}))  # fmt: skip

    return app


def counted(factory: Any, counter: Counter) -> Any:
    def open_counted(address: str, security: Any) -> Any:
        return grpc.intercept_channel(factory(address, security), counter)

    return open_counted


class _Shared:
    """A channel several pooled nodes use; closing it is left to the pool."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel

    def __getattr__(self, name: str) -> Any:
        return getattr(self.channel, name)

    def close(self) -> None:
        pass


def shared(factory: Any, per_channel: int, opened: list[Any]) -> Any:
    """``factory`` that hands each run of ``per_channel`` callers one channel between them."""
    lock = threading.Lock()
    calls = itertools.count()

    def open_shared(address: str, security: Any) -> Any:
        with lock:
            if next(calls) % per_channel == 0:
                opened.append(_Shared(factory(address, security)))
            return opened[-1]

    return open_shared


def bench(
    nodes: int, rounds: int, limit_s: float = 120.0, state: str = "sqlite", per_channel: int = 1
) -> dict[str, Any]:
    fleet_counter, server_counter = Counter(), Counter()
    original_node, original_grid = node_module.open_channel, grpcgrid.open_channel
    channels: list[Any] = []
    node_module.open_channel = shared(counted(original_node, fleet_counter), per_channel, channels)  # type: ignore[assignment]
    grpcgrid.open_channel = counted(original_grid, server_counter)  # type: ignore[assignment]
    app = client_app()
    pool: list[SuperNode] = []
    threads: list[threading.Thread] = []
    try:
        cluster = LocalCluster(0, [], insecure=True)
        if state == "memory":
            cluster.superlink_args += ["--state", "memory"]
        with cluster:
            assert cluster.addresses is not None
            started = time.perf_counter()
            for index in range(nodes):
                node = SuperNode(cluster.addresses.fleet, node_config={"partition-id": index,
                                 "num-partitions": nodes}, app=app, security=INSECURE,
                                 heartbeat_interval=30.0)  # fmt: skip
                pool.append(node)
                thread = threading.Thread(target=node.run, name=f"node-{index}", daemon=True)
                thread.start()
                threads.append(thread)
            while sum(n.node_id is not None for n in pool) < nodes:
                if time.perf_counter() - started > limit_s:
                    done = sum(n.node_id is not None for n in pool)
                    return {"nodes": nodes, "failed": f"only {done} of {nodes} nodes registered in {limit_s:.0f} s"}
                time.sleep(0.05)
            registered = time.perf_counter() - started
            strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=nodes,
                              min_available_nodes=nodes)  # fmt: skip
            fed = fl.Federation(app, strategy=strategy, num_clients=nodes,
                                initial_arrays=[np.zeros(PARAMS, np.float32)], display="none")  # fmt: skip
            times: list[float] = []
            marks: list[tuple[collections.Counter[str], collections.Counter[str]]] = []

            def on(event: Any) -> None:
                if isinstance(event, fl.events.RoundStarted):
                    marks.append((fleet_counter.snapshot(), server_counter.snapshot()))
                    times.append(time.perf_counter())

            fed.subscribe(on)
            result = fed.deploy(cluster.addresses.control, rounds=rounds, insecure=True)
            end = time.perf_counter()
            end_counts = (fleet_counter.snapshot(), server_counter.snapshot())
    finally:
        node_module.open_channel, grpcgrid.open_channel = original_node, original_grid  # type: ignore[assignment]
        for node in pool:
            node.stop()
        for thread in threads:
            thread.join(15)
        for channel in channels:
            channel.channel.close()
    assert result.rounds_completed == rounds, result.rounds_completed
    # Measure from round 2 (round 1 pays the run's one-off calls: GetRun, ...).
    first = 1 if rounds > 1 else 0
    fleet = end_counts[0] - marks[first][0]
    server = end_counts[1] - marks[first][1]
    for calls in (fleet, server):
        for name in ("Heartbeat", "Register", "SendHeartbeat"):
            calls.pop(name, None)
    messages = nodes * (rounds - first)
    seconds = end - times[first]
    return {
        "nodes": nodes,
        "register_s": registered,
        "rounds_per_s": (rounds - first) / seconds,
        "fleet_rpcs_per_message": sum(fleet.values()) / messages,
        "serverappio_rpcs_per_message": sum(server.values()) / messages,
        "fleet": dict(fleet),
        "serverappio": dict(server),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit-s", type=float, default=120.0, help="give up registering after this")
    parser.add_argument("--state", nargs="+", choices=["sqlite", "memory"], default=["sqlite"],
                        help="the SuperLink's state: SQLite and files in its directory, or memory")
    parser.add_argument("--nodes-per-channel", type=int, default=1,
                        help="pooled nodes sharing one gRPC channel (fewer threads in this process)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    for nodes, state in itertools.product(args.nodes, args.state):
        with contextlib.redirect_stdout(io.StringIO()):  # each node's 'registered' line
            row = bench(nodes, args.rounds, args.limit_s, state, args.nodes_per_channel)
        if "failed" in row:
            print(f"{row['nodes']:>5} nodes, {state}: did not run: {row['failed']}", flush=True)
            continue
        total = row["fleet_rpcs_per_message"] + row["serverappio_rpcs_per_message"]
        print(
            f"{row['nodes']:>5} nodes, {state:>6}: {row['rounds_per_s']:.3f} rounds/s, "
            f"{total:.2f} RPCs per message ({row['fleet_rpcs_per_message']:.2f} Fleet + "
            f"{row['serverappio_rpcs_per_message']:.2f} ServerAppIo), registration {row['register_s']:.1f} s",
            flush=True,
        )
        print(f"       Fleet: {row['fleet']}", flush=True)
        print(f"       ServerAppIo: {row['serverappio']}", flush=True)


if __name__ == "__main__":
    main()
