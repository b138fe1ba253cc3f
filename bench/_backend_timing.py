"""Timing helpers shared by the backend benchmarks (bench/processes.py, bench/ray_backend.py)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from fedlab.client import ClientApp
from fedlab.context import Context
from fedlab.message import Message
from fedlab.records import RecordDict
from fedlab.simulation import SimulationGrid
from fedlab.simulation.backend import Backend


def echo_app() -> ClientApp:
    """A ClientApp whose train replies with exactly what it received."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        return msg.reply(msg.content)

    return app


def call_ms(backend: Backend, content: Callable[[], RecordDict], calls: int) -> float:
    """Median milliseconds of ``backend.call`` on one node, one call at a time (started backend)."""
    context = Context(run_id=1, node_id=7, node_config={"partition-id": 0})
    for _ in range(3):  # warm up: worker ready, pages faulted in once
        backend.call(Message(content(), 7, "train"), context)
    samples = []
    for _ in range(calls):
        message = Message(content(), 7, "train")
        started = time.perf_counter()
        reply = backend.call(message, context)
        samples.append(time.perf_counter() - started)
        del reply
    return statistics.median(samples) * 1000


def round_times(grid: SimulationGrid, content: Callable[[], RecordDict], rounds: int) -> list[float]:
    """Seconds per round of one ``content`` message to every node of ``grid`` (closed after)."""
    times = []
    try:
        for rnd in range(1, rounds + 1):
            messages = [
                grid.create_message(content(), "train", node, group_id=str(rnd))
                for node in grid.get_node_ids()
            ]
            started = time.perf_counter()
            replies = grid.send_and_receive(messages, timeout=600)
            times.append(time.perf_counter() - started)
            assert not any(r.has_error() for r in replies), [r.error for r in replies]
    finally:
        grid.close()
    return times
