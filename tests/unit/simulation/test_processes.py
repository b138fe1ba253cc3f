"""The processes backend: clients in worker processes, messages through shared memory."""

from __future__ import annotations

import ctypes
import faulthandler
import gc
import hashlib
import mmap
import multiprocessing
import os
import signal
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from fedlab.client import ClientApp
from fedlab.context import Context
from fedlab.errors import CodecError, SimulationError
from fedlab.events import EventBus
from fedlab.message import Error, ErrorCode, Message
from fedlab.records import (
    ALLOWED_DTYPES,
    Array,
    ArrayRecord,
    ConfigRecord,
    MetricRecord,
    RecordDict,
)
from fedlab.simulation import InlineBackend, SimulationGrid
from fedlab.simulation._wire import message_frame, read_message, read_record_dict, record_dict_frame
from fedlab.simulation.processes import ProcessBackend
from fedlab.strategy import FedAvg
from fedlab.wire.codec import encode_message, encode_record_dict
from tests.contracts.grid_contract import GridContract, contract_app


class TestProcessSimulationGridContract(GridContract):
    def make_grid(self, app: ClientApp, num_nodes: int, events: EventBus) -> SimulationGrid:
        backend = ProcessBackend(2, stop_timeout=0.5)
        return SimulationGrid(app, num_nodes, backend=backend, events=events, seed=0)


# -- helpers ------------------------------------------------------------------------------


def _message(
    grid: SimulationGrid, node: int, arrays: ArrayRecord | None = None, **config: object
) -> Message:
    content = RecordDict(
        {
            "arrays": arrays if arrays is not None else ArrayRecord({"w": np.zeros(3, np.float32)}),
            "config": ConfigRecord(dict(config)),  # type: ignore[arg-type]
        }
    )
    return grid.create_message(content, "train", node, group_id="1")


def _reply_metrics(reply: Message) -> MetricRecord:
    assert reply.error is None, reply.error
    metrics = reply.content["metrics"]
    assert isinstance(metrics, MetricRecord)
    return metrics


def _children() -> set[int]:
    """The processes whose parent is this one, zombies (exited, not reaped) included."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid():
                found.add(int(entry))
    return found


def _open_segments() -> int:
    """How many shared-memory segments this process holds, open or mapped."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:fedlab")
        except OSError:
            pass
    with open("/proc/self/maps") as maps:
        count += sum("memfd:fedlab" in line for line in maps)
    return count


def _dev_shm() -> set[str]:
    return {name for name in os.listdir("/dev/shm") if "fedlab" in name}


GridFactory = Callable[..., SimulationGrid]


def _pids(grid: SimulationGrid) -> list[int]:
    backend = grid.backend
    assert isinstance(backend, ProcessBackend)
    return backend.worker_pids


@pytest.fixture
def grid_factory() -> Iterator[GridFactory]:
    grids: list[SimulationGrid] = []

    def make(app: ClientApp, num_nodes: int = 4, **backend: Any) -> SimulationGrid:
        grid = SimulationGrid(app, num_nodes, backend=ProcessBackend(2, **backend), seed=0)
        grids.append(grid)
        return grid

    try:
        yield make
    finally:
        for grid in grids:
            grid.close()


def _reporting_app() -> ClientApp:
    """Counts calls in the node's state; replies with its pid; dies or raises on request."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        config = msg.content["config"]
        assert isinstance(config, ConfigRecord)
        how = config.get("die")
        if how == "exit":
            os._exit(3)
        if how == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        if how == "segfault":
            faulthandler.disable()  # no traceback on the terminal: the crash is the point
            ctypes.string_at(0)
        if how == "system-exit":
            sys.exit("bye")
        if how == "unencodable":
            return msg.reply(RecordDict({"config": ConfigRecord({"text": "\ud800"})}))
        calls = ctx.state.get("calls", MetricRecord({"n": 0}))
        assert isinstance(calls, MetricRecord)
        calls["n"] = int(calls["n"]) + 1  # type: ignore[call-overload]
        ctx.state["calls"] = calls
        metrics = MetricRecord({"pid": os.getpid(), "calls": calls["n"], "num-examples": 1})
        return msg.reply(RecordDict({"arrays": msg.content["arrays"], "metrics": metrics}))

    return app


# -- state, determinism, parallelism -------------------------------------------------------


def test_each_nodes_state_persists_across_rounds_whichever_worker_runs_it(
    grid_factory: GridFactory,
) -> None:
    grid = grid_factory(_reporting_app(), 5)
    nodes = list(grid.get_node_ids())
    pids = set()
    for expected in (1, 2, 3):
        replies = grid.send_and_receive([_message(grid, n) for n in nodes], timeout=30)
        assert [_reply_metrics(r)["calls"] for r in replies] == [expected] * 5
        pids |= {_reply_metrics(r)["pid"] for r in replies}
    assert [grid.node_state(n)["calls"]["n"] for n in nodes] == [3] * 5  # type: ignore[index]
    assert pids <= set(_pids(grid))


def _deterministic_app() -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        arrays = msg.content["arrays"]
        assert isinstance(arrays, ArrayRecord)
        partition = int(ctx.node_config["partition-id"])
        rng = np.random.default_rng([partition, msg.metadata.round])
        trained = {
            name: (a.numpy() + rng.normal(0, 0.1, a.shape)).astype(a.dtype)
            for name, a in ((n, arrays[n]) for n in arrays)
        }
        loss = float(sum(np.sum(t.astype(np.float64) ** 2) for t in trained.values()))
        metrics = MetricRecord({"loss": loss, "num-examples": partition + 1})
        return msg.reply(RecordDict({"arrays": ArrayRecord(trained), "metrics": metrics}))

    @app.evaluate()
    def evaluate(msg: Message, ctx: Context) -> Message:
        arrays = msg.content["arrays"]
        assert isinstance(arrays, ArrayRecord)
        score = float(np.sum(arrays["w"].numpy()) * (int(ctx.node_config["partition-id"]) + 1))
        return msg.reply(RecordDict({"metrics": MetricRecord({"score": score, "num-examples": 2})}))

    return app


def test_a_seeded_fedavg_run_equals_the_inline_backends_bit_for_bit() -> None:
    initial = ArrayRecord(
        {"w": np.linspace(-1, 1, 2000, dtype=np.float32).reshape(40, 50), "b": np.arange(7.0)}
    )
    results = []
    for backend in (InlineBackend(), ProcessBackend(2)):
        grid = SimulationGrid(_deterministic_app(), 6, backend=backend, seed=0)
        try:
            strategy = FedAvg(fraction_train=0.5, fraction_evaluate=0.5, min_train_nodes=2)
            results.append(strategy.start(grid, initial, num_rounds=3, seed=7))
        finally:
            grid.close()
    inline, processes = results
    assert processes.rounds_completed == inline.rounds_completed == 3
    for name in ("w", "b"):
        assert bytes(processes.arrays[name].data) == bytes(inline.arrays[name].data)
    assert processes.train_metrics_clientapp == inline.train_metrics_clientapp
    assert processes.evaluate_metrics_clientapp == inline.evaluate_metrics_clientapp


def _barrier_app(barrier: object) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        # Passes only if both clients are inside their calls at the same time.
        barrier.wait(30)  # type: ignore[attr-defined]
        return msg.reply(RecordDict({"metrics": MetricRecord({"pid": os.getpid()})}))

    return app


def test_clients_run_at_the_same_time_in_separate_worker_processes(
    grid_factory: GridFactory,
) -> None:
    barrier = multiprocessing.get_context("fork").Barrier(2)
    grid = grid_factory(_barrier_app(barrier), 2)
    replies = grid.send_and_receive([_message(grid, n) for n in grid.get_node_ids()], timeout=60)
    pids = [_reply_metrics(r)["pid"] for r in replies]
    assert len(set(pids)) == 2
    assert os.getpid() not in pids
    assert sorted(pids) == _pids(grid)


# -- crashes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "described"),
    [
        ("exit", "exit code 3"),
        ("sigkill", "killed by signal SIGKILL (9)"),
        ("segfault", "killed by signal SIGSEGV (11)"),
    ],
)
def test_a_worker_that_dies_fails_only_its_client_and_is_replaced(
    grid_factory: GridFactory, how: str, described: str
) -> None:
    grid = grid_factory(_reporting_app(), 4)
    doomed, *others = grid.get_node_ids()
    before = set(_pids(grid))
    messages = [_message(grid, doomed, die=how)] + [_message(grid, n) for n in others]
    replies = grid.send_and_receive(messages, timeout=30)

    assert replies[0].error is not None
    assert replies[0].error.code == ErrorCode.CLIENT_APP_CRASHED
    assert f"node {doomed} ('train' message) died: {described}" in replies[0].error.reason
    assert [_reply_metrics(r)["calls"] for r in replies[1:]] == [1, 1, 1]

    replies = grid.send_and_receive([_message(grid, n) for n in grid.get_node_ids()], timeout=30)
    assert [_reply_metrics(r)["calls"] for r in replies] == [1, 2, 2, 2]  # its state was not kept
    after = set(_pids(grid))
    assert (
        len(after) == 2 and len(after - before) == 1
    )  # one fresh worker took the dead one's place
    assert {_reply_metrics(r)["pid"] for r in replies} <= after


def test_system_exit_in_a_client_is_a_crash_reply_and_the_worker_carries_on(
    grid_factory: GridFactory,
) -> None:
    grid = grid_factory(_reporting_app(), 2)
    first, second = grid.get_node_ids()
    pids = _pids(grid)
    replies = grid.send_and_receive(
        [_message(grid, first, die="system-exit"), _message(grid, second)]
    )
    assert replies[0].error is not None and replies[0].error.code == ErrorCode.CLIENT_APP_CRASHED
    assert "The ClientApp raised SystemExit (bye)" in replies[0].error.reason
    assert _reply_metrics(replies[1])["calls"] == 1
    assert _pids(grid) == pids


def test_a_reply_that_cannot_be_encoded_is_a_crash_reply_naming_the_node(
    grid_factory: GridFactory,
) -> None:
    grid = grid_factory(_reporting_app(), 2)
    node = grid.get_node_ids()[0]
    (reply,) = grid.send_and_receive([_message(grid, node, die="unencodable")], timeout=30)
    assert reply.error is not None and reply.error.code == ErrorCode.CLIENT_APP_CRASHED
    assert f"context.state of node {node} cannot be sent back" in reply.error.reason


# -- bytes ---------------------------------------------------------------------------------


def _every_dtype() -> ArrayRecord:
    rng = np.random.default_rng(0)
    # First, so that it starts where the frame aligns array data: on a 64-byte boundary.
    arrays = {"large": Array.from_numpy(rng.normal(size=(700, 1000)).astype(np.float32))}
    for dtype in ALLOWED_DTYPES:
        if dtype == "bfloat16":
            raw = rng.integers(0, 2**16, 33, dtype=np.uint16).astype("<u2").tobytes()
            arrays[dtype] = Array("bfloat16", (3, 11), raw)
            continue
        values = rng.integers(0, 256, 3 * 11 * np.dtype(dtype).itemsize, dtype=np.uint8)
        arrays[dtype] = Array(dtype, (3, 11), values.tobytes())  # every bit pattern, NaNs too
    special = np.array([np.nan, -0.0, np.inf, -np.inf, 5e-324], np.float64)
    arrays["special"] = Array.from_numpy(special)
    arrays["nan-payload"] = Array("float32", (2,), bytes.fromhex("0100c07f ffffffff"))
    arrays["scalar"] = Array.from_numpy(np.float64(2.5))
    arrays["empty"] = Array.from_numpy(np.zeros((0, 4), np.int16))
    return ArrayRecord(arrays)


def _echo_app() -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        arrays = msg.content["arrays"]
        assert isinstance(arrays, ArrayRecord)
        seen = {name: hashlib.sha256(arrays[name].data).hexdigest() for name in arrays}
        ctx.state["kept"] = arrays
        return msg.reply(RecordDict({"arrays": arrays, "seen": ConfigRecord(seen)}))

    return app


def test_arrays_of_every_dtype_cross_bit_exact_both_ways_and_into_the_state(
    grid_factory: GridFactory,
) -> None:
    grid = grid_factory(_echo_app(), 1)
    node = grid.get_node_ids()[0]
    sent = _every_dtype()
    (reply,) = grid.send_and_receive([_message(grid, node, sent)], timeout=30)

    expected = {name: hashlib.sha256(sent[name].data).hexdigest() for name in sent}
    assert dict(reply.content["seen"]) == expected  # what the client saw
    returned = reply.content["arrays"]
    assert isinstance(returned, ArrayRecord)
    assert list(returned) == list(sent)
    for name in sent:
        assert (returned[name].dtype, returned[name].shape) == (sent[name].dtype, sent[name].shape)
        assert hashlib.sha256(returned[name].data).hexdigest() == expected[name]
    assert grid.node_state(node)["kept"] == sent
    large = returned["large"]  # 2.8 MB: read in place from the reply's shared memory
    assert isinstance(large.data, memoryview) and isinstance(large.data.obj, mmap.mmap)
    assert not large.numpy().flags.writeable
    assert large.numpy().ctypes.data % 64 == 0


def test_the_frames_written_to_shared_memory_are_the_codecs_bytes() -> None:
    records = RecordDict(
        {
            "arrays": _every_dtype(),
            "metrics": MetricRecord({"loss": 0.25, "n": [1, 2]}),
            "config": ConfigRecord({"lr": 0.1, "name": "x", "raw": b"\x00", "on": True}),
        }
    )
    msg = Message(records, 7, "train", group_id="3")
    error = msg.reply(Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, "boom"))
    for message in (msg, error):
        frame = b"".join(bytes(part) for part in message_frame(message))
        assert frame == encode_message(message)
        back = read_message(memoryview(frame))
        assert back.metadata == message.metadata
        assert (back.content if back.has_content() else back.error) == (
            message.content if message.has_content() else message.error
        )
    frame = b"".join(bytes(part) for part in record_dict_frame(records))
    assert frame == encode_record_dict(records)
    assert read_record_dict(memoryview(frame)) == records


# -- resources -----------------------------------------------------------------------------


def test_no_shared_memory_is_left_behind_after_calls_a_crash_and_close() -> None:
    shm_before, segments_before = _dev_shm(), _open_segments()
    grid = SimulationGrid(_reporting_app(), 3, backend=ProcessBackend(2), seed=0)
    big = ArrayRecord({"w": np.ones((1000, 1000), np.float32)})  # 4 MB: mapped, read in place
    try:
        nodes = grid.get_node_ids()
        for die in ("", "exit"):
            messages = [_message(grid, n, big, die=die if n == nodes[0] else "") for n in nodes]
            replies = grid.send_and_receive(messages, timeout=30)
            assert [r.has_error() for r in replies] == [bool(die), False, False]
            assert _open_segments() > segments_before  # the replies' arrays view shared memory
            del replies, messages
    finally:
        grid.close()
    gc.collect()
    assert _open_segments() == segments_before
    assert _dev_shm() == shm_before


def test_close_stops_every_worker_even_one_busy_with_a_call() -> None:
    started = multiprocessing.get_context("fork").Event()
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        started.set()
        signal.pause()  # never answers
        return msg.reply(RecordDict())

    children_before = _children()
    backend = ProcessBackend(2, stop_timeout=0.2)
    grid = SimulationGrid(app, 2, backend=backend, seed=0)
    workers = set(backend.worker_pids)
    assert workers <= _children() and len(workers) == 2
    grid.push_messages([_message(grid, grid.get_node_ids()[0])])
    assert started.wait(30)
    grid.close()
    assert backend.worker_pids == []
    assert _children() == children_before
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_the_backend_starts_again_after_close() -> None:
    backend = ProcessBackend(2)
    backend.start(_reporting_app())
    first = backend.worker_pids
    context = Context(run_id=1, node_id=5, node_config={"partition-id": 0})
    message = Message(RecordDict({"arrays": ArrayRecord(), "config": ConfigRecord()}), 5, "train")
    backend.close()
    with pytest.raises(SimulationError, match="not started"):
        backend.call(message, context)
    backend.start(_reporting_app())
    try:
        assert set(backend.worker_pids).isdisjoint(first)
        reply = backend.call(message, context)
        assert _reply_metrics(reply)["calls"] == 1
        assert context.state["calls"]["n"] == 1  # type: ignore[index]
    finally:
        backend.close()


def test_spawned_workers_load_the_app_and_answer(grid_factory: GridFactory) -> None:
    grid = grid_factory(contract_app(), 2, start_method="spawn")
    backend = grid.backend
    assert isinstance(backend, ProcessBackend) and backend.start_method == "spawn"
    replies = grid.send_and_receive([_message(grid, n) for n in grid.get_node_ids()], timeout=60)
    assert [_reply_metrics(r)["calls"] for r in replies] == [1, 1]


def test_bad_settings_are_refused_with_the_accepted_values() -> None:
    with pytest.raises(SimulationError, match="at least 1"):
        ProcessBackend(0)
    with pytest.raises(SimulationError, match="'fork'"):
        ProcessBackend(2, start_method="threads")
    with pytest.raises(SimulationError, match="stop_timeout"):
        ProcessBackend(2, stop_timeout=-1)
    assert ProcessBackend().concurrency == len(os.sched_getaffinity(0))


def test_an_app_the_workers_cannot_load_fails_each_call_with_the_reason(
    grid_factory: GridFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A module that exists only in this process: spawned workers cannot import the handler.
    ghost = types.ModuleType("fedlab_ghost_module")
    monkeypatch.setitem(sys.modules, ghost.__name__, ghost)
    app = ClientApp()

    def train(msg: Message, ctx: Context) -> Message:
        return msg.reply(RecordDict())

    train.__module__, train.__qualname__ = ghost.__name__, "train"
    ghost.train = train  # type: ignore[attr-defined]
    app.train()(train)
    grid = grid_factory(app, 1, start_method="spawn")
    (reply,) = grid.send_and_receive([_message(grid, grid.get_node_ids()[0])], timeout=60)
    assert reply.error is not None and reply.error.code == ErrorCode.CLIENT_APP_CRASHED
    assert "could not load the ClientApp" in reply.error.reason
    assert "start_method='fork'" in reply.error.reason
    assert "No module named 'fedlab_ghost_module'" in reply.error.reason


def test_a_damaged_frame_is_a_codec_error_not_a_crash() -> None:
    frame = encode_message(Message(RecordDict({"arrays": _every_dtype()}), 7, "train"))
    for damaged in (frame[:-1], frame + b"\x00", frame[:6], b"FLR1" + frame[4:]):
        with pytest.raises(CodecError):
            read_message(memoryview(damaged))
