"""The processes backend hands a worker its next call as its reply arrives; none waits behind a hung one."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator
from concurrent.futures import Future

import pytest

from fedlab.client import ClientApp
from fedlab.context import Context
from fedlab.errors import SimulationError
from fedlab.message import Message
from fedlab.records import ConfigRecord, MetricRecord, RecordDict
from fedlab.simulation.processes import ProcessBackend

_FORK = multiprocessing.get_context("fork")


def _app(runs: object, hung_pid: object, started: object, go: object = None) -> ClientApp:
    """Counts the calls it starts; ``hang`` and ``exit`` record their pid and signal ``started``.

    Then ``hang`` never returns, and ``exit`` ends its worker once ``go`` is set.
    """
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        with runs.get_lock():  # type: ignore[attr-defined]
            runs.value += 1  # type: ignore[attr-defined]
        config = msg.content["config"]
        assert isinstance(config, ConfigRecord)
        if config.get("hang"):
            hung_pid.value = os.getpid()  # type: ignore[attr-defined]
            started.set()  # type: ignore[attr-defined]
            signal.pause()
        if config.get("exit"):
            hung_pid.value = os.getpid()  # type: ignore[attr-defined]
            started.set()  # type: ignore[attr-defined]
            go.wait(30)  # type: ignore[attr-defined]
            os._exit(5)
        return msg.reply(RecordDict({"metrics": MetricRecord({"pid": os.getpid()})}))

    return app


@pytest.fixture
def shared() -> Iterator[tuple[object, object, object]]:
    yield _FORK.Value("i", 0), _FORK.Value("i", 0), _FORK.Event()


def _submit(backend: ProcessBackend, node: int, **config: bool) -> tuple[str, Future[Message]]:
    message = Message(RecordDict({"config": ConfigRecord(dict(config))}), node, "train")
    context = Context(run_id=1, node_id=node, node_config={"partition-id": node})
    return message.metadata.message_id, backend.submit(lambda: backend.call(message, context))


def _pid(future: Future[Message]) -> int:
    reply = future.result(timeout=60)
    assert reply.error is None, reply.error
    metrics = reply.content["metrics"]
    assert isinstance(metrics, MetricRecord)
    return int(metrics["pid"])  # type: ignore[call-overload]


def test_calls_made_while_a_client_hangs_run_on_the_other_worker(
    shared: tuple[object, object, object],
) -> None:
    runs, hung_pid, started = shared
    backend = ProcessBackend(2, stop_timeout=0.2)
    backend.start(_app(runs, hung_pid, started))
    try:
        hung_id, hung = _submit(backend, 1, hang=True)
        assert started.wait(60)  # type: ignore[attr-defined]
        others = [_submit(backend, node)[1] for node in range(2, 8)]
        pids = {_pid(future) for future in others}
        # All six ran, one after another, on the worker that is not stuck.
        assert len(pids) == 1 and hung_pid.value not in pids  # type: ignore[attr-defined]
        assert pids < set(backend.worker_pids)
        backend.cancel([hung_id])
        with pytest.raises(SimulationError, match="killed: the call did not return in time"):
            hung.result(timeout=60)
    finally:
        backend.close()
    assert runs.value == 7  # type: ignore[attr-defined]


def test_a_call_given_up_while_it_waits_for_a_worker_never_runs(
    shared: tuple[object, object, object],
) -> None:
    runs, hung_pid, started = shared
    backend = ProcessBackend(1, stop_timeout=0.2)
    backend.start(_app(runs, hung_pid, started))
    try:
        hung_id, hung = _submit(backend, 1, hang=True)
        assert started.wait(60)  # type: ignore[attr-defined]
        waiting_id, waiting = _submit(backend, 2)
        backend.cancel([waiting_id])
        with pytest.raises(SimulationError, match="given up before a worker process started it"):
            waiting.result(timeout=60)
        backend.cancel([hung_id])
        with pytest.raises(SimulationError, match="killed"):
            hung.result(timeout=60)
        fresh = _pid(_submit(backend, 3)[1])
        assert fresh != hung_pid.value and backend.worker_pids == [fresh]  # type: ignore[attr-defined]
    finally:
        backend.close()
    assert runs.value == 2  # type: ignore[attr-defined]  # the hung call and the last one


def test_calls_waiting_for_a_worker_that_dies_run_on_its_replacement(
    shared: tuple[object, object, object],
) -> None:
    runs, hung_pid, started = shared
    go = _FORK.Event()
    backend = ProcessBackend(1, stop_timeout=0.2)
    backend.start(_app(runs, hung_pid, started, go))
    try:
        (first,) = backend.worker_pids
        _, dying = _submit(backend, 1, exit=True)
        assert started.wait(60)  # type: ignore[attr-defined]
        _, waiting = _submit(backend, 2)
        go.set()  # now the first client exits
        with pytest.raises(SimulationError, match="died: exit code 5"):
            dying.result(timeout=60)
        replacement = _pid(waiting)
        assert replacement != first and backend.worker_pids == [replacement]
    finally:
        backend.close()
    assert runs.value == 2  # type: ignore[attr-defined]
