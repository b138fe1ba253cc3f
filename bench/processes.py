"""The processes backend against inline and threads: CPU-bound Python clients, per-call cost.

Two measurements, each printed as a table:

1. **CPU-bound rounds.** Each client runs a fixed amount of pure-Python work (a loop that
   takes about ``--work-ms`` milliseconds on one core here, holding the GIL throughout)
   and replies with a 1k-parameter float32 model. A round sends one message to each of
   ``--clients`` clients. Wall time per round for ``inline``, ``threads`` and
   ``processes`` with ``--workers`` workers; the first round is reported apart (it
   includes warming up), the others as a median. "bare procs" runs the same work in
   ``--workers`` plain forked processes without fedlab: the most these CPUs allow.
2. **Per-call overhead.** ``backend.call`` on one node, one call at a time, with a client
   that echoes what it receives: milliseconds per call with no arrays and with one 1M
   float32 array (4 MB each way), processes minus inline (which costs ~nothing).

Usage::

    python bench/processes.py
    python bench/processes.py --clients 16 --workers 4 --work-ms 20
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
from _backend_timing import call_ms, echo_app, round_times  # bench/ is the script's directory

from fedlab.client import ClientApp
from fedlab.context import Context
from fedlab.message import Message
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.simulation import InlineBackend, SimulationGrid, ThreadBackend
from fedlab.simulation.backend import Backend
from fedlab.simulation.processes import ProcessBackend


def python_work(iterations: int) -> int:
    """Pure-Python integer work: holds the GIL the whole time."""
    total = 0
    for i in range(iterations):
        total = (total + i * i) % 1_000_003
    return total


def calibrate(work_ms: float) -> int:
    """Iterations of :func:`python_work` that take about ``work_ms`` here."""
    iterations = 100_000
    started = time.perf_counter()
    python_work(iterations)
    elapsed = time.perf_counter() - started
    return max(1, int(iterations * work_ms / 1000 / elapsed))


def cpu_app() -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        config = msg.content["config"]
        assert isinstance(config, ConfigRecord)
        python_work(int(config["iterations"]))  # type: ignore[call-overload]
        metrics = MetricRecord({"num-examples": 1, "pid": os.getpid()})
        return msg.reply(RecordDict({"arrays": msg.content["arrays"], "metrics": metrics}))

    return app


def rounds(backend: Backend, clients: int, num_rounds: int, iterations: int) -> list[float]:
    grid = SimulationGrid(cpu_app(), clients, backend=backend, seed=0)
    model = ArrayRecord([np.zeros(1000, np.float32)])
    config = ConfigRecord({"iterations": iterations})
    return round_times(grid, lambda: RecordDict({"arrays": model, "config": config}), num_rounds)


def bare_processes_ms(clients: int, workers: int, iterations: int) -> float:
    """The same work in ``workers`` bare forked processes, no fedlab: what the CPUs allow."""
    share = [clients // workers + (i < clients % workers) for i in range(workers)]
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_repeat, args=(n, iterations)) for n in share]
    started = time.perf_counter()
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    return (time.perf_counter() - started) * 1000


def _repeat(times: int, iterations: int) -> None:
    for _ in range(times):
        python_work(iterations)


def per_call_ms(backend: Backend, content: Callable[[], RecordDict], calls: int) -> float:
    backend.start(echo_app())
    try:
        return call_ms(backend, content, calls)
    finally:
        backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--work-ms", type=float, default=5.0)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()

    iterations = calibrate(args.work_ms)
    print(
        f"CPU-bound rounds: {args.clients} clients x ~{args.work_ms:g} ms of pure-Python work "
        f"({iterations} iterations), {args.workers} workers, {os.cpu_count()} CPUs"
    )
    print(f"{'backend':<12}{'round 1 (ms)':>14}{'median later round (ms)':>26}{'speed-up':>10}")
    backends: list[tuple[str, Callable[[], Backend]]] = [
        ("inline", InlineBackend),
        ("threads", lambda: ThreadBackend(args.workers)),
        ("processes", lambda: ProcessBackend(args.workers)),
    ]
    baseline = None
    for name, make in backends:
        times = rounds(make(), args.clients, args.rounds, iterations)
        steady = statistics.median(times[1:]) * 1000
        baseline = baseline or steady
        print(f"{name:<12}{times[0] * 1000:>14.1f}{steady:>26.1f}{baseline / steady:>9.2f}x")
    bare = statistics.median(
        bare_processes_ms(args.clients, args.workers, iterations) for _ in range(args.rounds)
    )
    print(
        f"{'bare procs':<12}{'':>14}{bare:>26.1f}{baseline / bare:>9.2f}x  (no fedlab: the ceiling)"
    )

    print(f"\nPer-call cost, one call at a time, echo client (median of {args.calls} calls)")
    print(f"{'content':<30}{'inline (ms)':>12}{'processes (ms)':>16}{'overhead (ms)':>15}")
    big = np.random.default_rng(0).normal(size=1_000_000).astype(np.float32)
    contents: list[tuple[str, Callable[[], RecordDict]]] = [
        ("metrics only", lambda: RecordDict({"metrics": MetricRecord({"x": 1.0})})),
        ("1M float32 (4 MB) each way", lambda: RecordDict({"arrays": ArrayRecord([big])})),
    ]
    for label, content in contents:
        inline = per_call_ms(InlineBackend(), content, args.calls)
        processes = per_call_ms(ProcessBackend(1), content, args.calls)
        print(f"{label:<30}{inline:>12.3f}{processes:>16.3f}{processes - inline:>15.3f}")

    started = time.perf_counter()
    backend = ProcessBackend(args.workers)
    backend.start(echo_app())
    context = Context(run_id=1, node_id=7)
    backend.call(Message(RecordDict(), 7, "train"), context)
    ready = time.perf_counter() - started
    backend.close()
    print(f"\nStart {args.workers} forked workers and answer a first call: {ready * 1000:.1f} ms")


if __name__ == "__main__":
    main()
