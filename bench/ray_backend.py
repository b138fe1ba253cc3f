"""The ray backend on a local Ray instance: start-up, per-call cost, round time.

Three measurements, each printed as a table:

1. **Start.** ``RayBackend()`` (imports ray) and ``start`` (starts a local instance and the
   actors), then a first call.
2. **Per-call overhead.** ``backend.call`` on one node, one call at a time, with a client
   that echoes what it receives: milliseconds per call with no arrays and with one 1M
   float32 array (4 MB each way), ray minus inline (which costs ~nothing). "same array"
   sends the same Array every call, as a round sends one global model to every client:
   it is encoded and put into the object store once. "new array" sends a fresh one each
   call.
3. **Rounds.** ``--clients`` small clients (1k-parameter model, no work), one message
   each per round: wall time per round (median of the later rounds) for inline, threads
   and ray; then 1M float32 clients with the shared object-store copy on and off.

Usage::

    python bench/ray_backend.py
    python bench/ray_backend.py --clients 50 --rounds 8
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
from _backend_timing import call_ms, echo_app, round_times  # bench/ is the script's directory

from fedlab.client import ClientApp
from fedlab.context import Context
from fedlab.message import Message
from fedlab.records import ArrayRecord, MetricRecord, RecordDict
from fedlab.simulation import InlineBackend, SimulationGrid, ThreadBackend, ray_backend
from fedlab.simulation.backend import Backend
from fedlab.simulation.ray_backend import RayBackend


def small_app() -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        arrays = msg.content["arrays"]
        metrics = MetricRecord({"num-examples": 1, "pid": os.getpid()})
        return msg.reply(RecordDict({"arrays": arrays, "metrics": metrics}))

    return app


def ray_round_times(backend: Backend, clients: int, rounds: int, params: int) -> list[float]:
    grid = SimulationGrid(small_app(), clients, backend=backend, seed=0)
    model = ArrayRecord([np.zeros(params, np.float32)])
    return round_times(grid, lambda: RecordDict({"arrays": model}), rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs")

    started = time.perf_counter()
    backend = RayBackend()
    built = time.perf_counter()
    backend.start(echo_app())
    ready = time.perf_counter()
    backend.call(Message(RecordDict(), 7, "train"), Context(run_id=1, node_id=7))
    first = time.perf_counter()
    print(
        f"Start: RayBackend() {(built - started) * 1000:.0f} ms, start() with a local "
        f"instance and {backend.concurrency} actors {(ready - built) * 1000:.0f} ms, "
        f"first call {(first - ready) * 1000:.1f} ms"
    )

    print(f"\nPer-call cost, one call at a time, echo client (median of {args.calls} calls)")
    print(f"{'content':<36}{'inline (ms)':>12}{'ray (ms)':>10}{'overhead (ms)':>15}")
    rng = np.random.default_rng(0)
    same = ArrayRecord([rng.normal(size=1_000_000).astype(np.float32)])
    contents: list[tuple[str, Callable[[], RecordDict]]] = [
        ("metrics only", lambda: RecordDict({"metrics": MetricRecord({"x": 1.0})})),
        ("1M float32, same array each call", lambda: RecordDict({"arrays": same.copy()})),
        (
            "1M float32, new array each call",
            lambda: RecordDict(
                {"arrays": ArrayRecord([rng.normal(size=1_000_000).astype(np.float32)])}
            ),
        ),
    ]
    inline = InlineBackend()
    inline.start(echo_app())
    for label, content in contents:
        base = call_ms(inline, content, args.calls)
        ray = call_ms(backend, content, args.calls)
        print(f"{label:<36}{base:>12.3f}{ray:>10.3f}{ray - base:>15.3f}")
    backend.close()

    print(f"\nRounds of {args.clients} clients (median of rounds 2..{args.rounds})")
    print(f"{'backend':<34}{'round 1 (ms)':>14}{'later rounds (ms)':>19}")
    runs: list[tuple[str, Callable[[], Backend], int]] = [
        ("inline, 1k params", InlineBackend, 1000),
        ("threads, 1k params", lambda: ThreadBackend(2), 1000),
        ("ray, 1k params", RayBackend, 1000),
        ("inline, 1M params", InlineBackend, 1_000_000),
        ("ray, 1M params, object store once", RayBackend, 1_000_000),
        ("ray, 1M params, inside each call", RayBackend, 1_000_000),
    ]
    share = ray_backend.SHARE_MIN_BYTES
    for label, make, params in runs:
        ray_backend.SHARE_MIN_BYTES = 2**62 if "inside each call" in label else share
        times = ray_round_times(make(), args.clients, args.rounds, params)
        steady = statistics.median(times[1:]) * 1000
        print(f"{label:<34}{times[0] * 1000:>14.1f}{steady:>19.1f}")
    ray_backend.SHARE_MIN_BYTES = share


if __name__ == "__main__":
    main()
