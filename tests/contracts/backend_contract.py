"""The backend contract: every simulation backend gives the inline backend's results.

A test module subclasses :class:`BackendContract` and implements ``make_backend``; the
suite runs for inline, threads, processes and ray (tests/integration/test_backend_contract.py).
The ClientApp is defined at module level so that backends running clients in other
processes can reach it.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import fedlab as fl
from fedlab.message import ErrorCode, Message
from fedlab.records import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.simulation import Backend, SimulationGrid
from fedlab.strategy import FedAvg

NUM_CLIENTS = 6
ROUNDS = 3

app = fl.ClientApp()


@app.train()
def train(msg: Message, ctx: fl.Context) -> Message:
    """Deterministic local work that depends on the partition, the round and the node's state."""
    partition = int(ctx.node_config["partition-id"])
    if partition == 5 and msg.metadata.round == 2:
        raise RuntimeError("partition 5 fails in round 2")
    calls = ctx.state.get("calls", MetricRecord({"n": 0}))
    assert isinstance(calls, MetricRecord)
    calls["n"] = int(calls["n"]) + 1  # type: ignore[call-overload]
    ctx.state["calls"] = calls
    arrays = msg.content.array_record("arrays")
    rng = np.random.default_rng(partition * 100 + msg.metadata.round)
    updated = {
        name: (arr.numpy() * np.float32(0.9) + rng.standard_normal(arr.shape).astype(np.float32))
        for name, arr in arrays.items()
    }
    return msg.reply(
        RecordDict(
            {
                "arrays": ArrayRecord(updated),
                "metrics": MetricRecord(
                    {"num-examples": 10 + partition, "calls": calls["n"], "loss": float(rng.random())}
                ),
            }
        )
    )


@app.evaluate()
def evaluate(msg: Message, ctx: fl.Context) -> Message:
    """Metrics from the received arrays, weighted by the partition."""
    partition = int(ctx.node_config["partition-id"])
    total = float(sum(float(a.numpy().sum()) for a in msg.content.array_record("arrays").values()))
    return msg.reply(
        RecordDict({"metrics": MetricRecord({"num-examples": 5 + partition, "checksum": total})})
    )


@app.query("echo")
def echo(msg: Message, ctx: fl.Context) -> Message:
    """Return the arrays exactly as received."""
    return msg.reply(RecordDict({"arrays": msg.content.array_record("arrays")}))


def initial_arrays() -> ArrayRecord:
    """Two float32 arrays, as a small model."""
    rng = np.random.default_rng(7)
    return ArrayRecord(
        {"w": rng.standard_normal((8, 5)).astype(np.float32), "b": np.zeros(5, np.float32)}
    )


def seeded_run(backend: str | Backend) -> fl.Result:
    """Three rounds of FedAvg on half of six clients, with federated evaluation."""
    strategy = FedAvg(fraction_train=0.5, fraction_evaluate=0.5, min_train_nodes=2,
                      min_evaluate_nodes=2, min_available_nodes=NUM_CLIENTS)
    fed = fl.Federation(app, strategy, num_clients=NUM_CLIENTS, initial_arrays=initial_arrays(),
                        seed=3, backend=backend, display="none")
    return fed.run(rounds=ROUNDS)


hanging = fl.ClientApp()
# Never set in a worker process or actor; set in this process after each test, to free the
# threads stuck in it.
_gate = threading.Event()


@hanging.train()
def hang_or_add_one(msg: Message, ctx: fl.Context) -> Message:
    """The partition the run config names never returns; the others add 1 to the arrays."""
    if ctx.node_config["partition-id"] == ctx.run_config["hang-partition"]:
        _gate.wait()
    arrays = {k: a.numpy() + np.float32(1) for k, a in msg.content.array_record("arrays").items()}
    metrics = MetricRecord({"num-examples": 1})
    return msg.reply(RecordDict({"arrays": ArrayRecord(arrays), "metrics": metrics}))


def hung_run(backend: str | Backend, hang_partition: int, timeout: float, rounds: int) -> fl.Result:
    """FedAvg on three clients, all sampled every round, one of which never returns."""
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_available_nodes=3)
    fed = fl.Federation(hanging, strategy, num_clients=3, initial_arrays=initial_arrays(),
                        seed=11, backend=backend, display="none", timeout=timeout,
                        run_config={"hang-partition": hang_partition})
    return fed.run(rounds=rounds)


@functools.cache
def first_client_of_round_one() -> int:
    """The partition that the seeded hung_run's first round calls first."""
    history = hung_run("inline", -1, 60.0, 1).history
    assert history is not None
    return int(history.clients[0]["partition_id"])


def comparable(result: fl.Result) -> dict[str, Any]:
    """Everything a seeded run must reproduce: arrays as bytes, metrics, the history."""
    assert result.history is not None
    return {
        "arrays": {k: (a.dtype, a.shape, bytes(a.data)) for k, a in result.arrays.items()},
        "train": {r: dict(m) for r, m in result.train_metrics_clientapp.items()},
        "evaluate": {r: dict(m) for r, m in result.evaluate_metrics_clientapp.items()},
        "history": json.loads(result.history.to_json(include_timings=False)),
    }


class BackendContract:
    """Behaviour every backend must have. Subclasses provide ``make_backend``."""

    #: The timeout of the hung-client runs: ample for a client that replies at once.
    hang_timeout = 3.0

    def make_backend(self) -> Backend:
        raise NotImplementedError

    @pytest.fixture
    def release_hung_clients(self) -> Iterator[None]:
        """After the test, free the threads of this process stuck in ``hang_or_add_one``."""
        global _gate
        yield
        stuck, _gate = _gate, threading.Event()
        stuck.set()

    @pytest.mark.usefixtures("release_hung_clients")
    def test_a_client_that_never_returns_times_out_and_the_others_go_on(self) -> None:
        # The first client of round 1: on inline, where clients run one after another, the
        # ones queued after it must still run, each with a timeout of its own.
        hung = first_client_of_round_one()
        timeout = self.hang_timeout
        result = hung_run(self.make_backend(), hung, timeout, rounds=2)
        assert result.history is not None and result.rounds_completed == 2
        rows = [c for c in result.history.clients if c["phase"] == "train"]
        assert sorted((c["round"], c["partition_id"]) for c in rows) == [
            (r, p) for r in (1, 2) for p in range(3)
        ]
        for row in rows:
            if row["partition_id"] != hung:
                assert row["error_code"] is None, row["error_reason"]
        first, second = (
            next(c for c in rows if c["round"] == r and c["partition_id"] == hung) for r in (1, 2)
        )
        assert first["error_code"] == int(ErrorCode.TIMEOUT)
        assert first["duration_s"] == timeout
        assert f"did not reply within {timeout}s" in first["error_reason"]
        # In round 2 it timed out again; inline, still stuck in this process, does not call it.
        assert second["error_code"] in (int(ErrorCode.TIMEOUT), int(ErrorCode.NODE_UNAVAILABLE))
        for summary in (r for r in result.history.rounds if r["round"] >= 1):
            assert (summary["train_replies"], summary["train_failures"]) == (2, 1)
            assert summary["aggregated"] is True
            assert summary["train_duration_s"] >= (timeout if summary["round"] == 1 else 0.0)
        for name, array in initial_arrays().items():  # two rounds of "add one" aggregated
            expected = array.numpy() + np.float32(1) + np.float32(1)
            np.testing.assert_array_equal(result.arrays[name].numpy(), expected)

    def test_a_seeded_run_equals_the_inline_backend_bit_for_bit(self) -> None:
        expected = comparable(seeded_run("inline"))
        got = comparable(seeded_run(self.make_backend()))
        assert got["arrays"] == expected["arrays"]
        assert got["train"] == expected["train"]
        assert got["evaluate"] == expected["evaluate"]
        assert got["history"] == expected["history"]

    def test_a_failing_client_is_reported_and_the_round_completes(self) -> None:
        result = seeded_run(self.make_backend())
        assert result.history is not None and result.rounds_completed == ROUNDS
        failed = [c for c in result.history.clients if c.get("error_code") is not None]
        partitions = {(c["round"], c["partition_id"]) for c in failed}
        assert partitions == {(2, 5)}
        for row in failed:
            assert row["error_code"] == int(ErrorCode.CLIENT_APP_RAISED_EXCEPTION)
            assert "RuntimeError: partition 5 fails in round 2" in row["error_reason"]

    def test_node_state_persists_across_rounds(self) -> None:
        result = seeded_run(self.make_backend())
        assert result.history is not None
        train_rows = [c for c in result.history.clients if c["phase"] == "train" and "calls" in c["metrics"]]
        seen: dict[int, int] = {}
        for row in sorted(train_rows, key=lambda c: c["round"]):
            seen[row["node_id"]] = seen.get(row["node_id"], 0) + 1
            assert row["metrics"]["calls"] == seen[row["node_id"]]
        assert max(seen.values()) >= 2  # some node was sampled twice

    def test_arrays_of_every_kind_cross_the_backend_bit_for_bit(self) -> None:
        arrays = ArrayRecord(
            {
                "f16": np.array([1.5, -0.0, np.inf], np.float16),
                "f64": np.array([[np.pi, -1e300], [5e-324, np.nan]]),
                "i8": np.array([-128, 127], np.int8),
                "u64": np.array([2**64 - 1], np.uint64),
                "b": np.array([True, False]),
                "c64": np.array([1 + 2j], np.complex64),
                "empty": np.zeros((0, 3), np.float32),
                "scalar": np.float32(2.5),
            }
        )
        arrays["bf16"] = Array("bfloat16", (2,), b"\x80\x3f\x00\xc0")
        grid = SimulationGrid(app, 2, backend=self.make_backend(), seed=0)
        try:
            node = grid.get_node_ids()[0]
            msg = grid.create_message(
                RecordDict({"arrays": arrays, "config": ConfigRecord()}), "query.echo", node, group_id="1"
            )
            (reply,) = grid.send_and_receive([msg], timeout=60)
        finally:
            grid.close()
        assert not reply.has_error(), reply.error
        back = reply.content.array_record("arrays")
        assert list(back) == list(arrays)
        for name, array in arrays.items():
            assert (back[name].dtype, back[name].shape) == (array.dtype, array.shape)
            assert bytes(back[name].data) == bytes(array.data)

    def test_a_backend_can_run_a_second_federation_after_the_first_closed_it(self) -> None:
        backend = self.make_backend()
        first = comparable(seeded_run(backend))
        second = comparable(seeded_run(backend))
        assert first["arrays"] == second["arrays"]
