"""FedBuff: the staleness-weighted buffered update, the loop without a round barrier, digits."""

from __future__ import annotations

import functools
import math
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

import fedlab as fl
from fedlab.errors import AggregationError, StrategyError
from fedlab.events import Event, RoundAggregated, RoundStarted, StrategyReport
from fedlab.message import ErrorCode, Message
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.simulation import SimulationGrid
from fedlab.strategy import FedBuff
from fedlab.strategy.fedbuff import inverse_sqrt_staleness


def _reply(instruction: Message, arrays: dict[str, Any], examples: int = 1) -> Message:
    metrics = MetricRecord({"num-examples": examples, "loss": float(examples)})
    return instruction.reply(RecordDict({"arrays": ArrayRecord(arrays), "metrics": metrics}))


def _as64(record: ArrayRecord) -> dict[str, npt.NDArray[np.float64]]:
    return {k: v.numpy().astype(np.float64) for k, v in record.items()}


# -- the server update, through the hooks ------------------------------------------------


def test_fedbuff_update_is_the_staleness_weighted_mean_of_buffered_model_changes() -> None:
    grid = SimulationGrid(fl.ClientApp(), 3, seed=0)
    strategy = FedBuff(buffer_size=2, server_learning_rate=0.5)
    x0 = ArrayRecord(
        {"w": np.array([[1.0, 2.0], [3.0, 4.0]], np.float32), "b": np.array([0.5, -0.5])}
    )
    first = {
        m.metadata.dst_node_id: m for m in strategy.configure_train(1, x0, ConfigRecord(), grid)
    }
    a, b, c = sorted(first)
    y = {
        a: {"w": np.array([[2.0, 2.0], [3.0, 5.0]], np.float32), "b": np.array([1.0, 0.0])},
        b: {"w": np.array([[0.0, 1.0], [2.0, 4.0]], np.float32), "b": np.array([0.5, 0.5])},
        c: {"w": np.array([[5.0, 2.0], [3.0, 0.0]], np.float32), "b": np.array([-1.5, -0.5])},
    }
    # Round 1: a and b, both fresh (staleness 0), examples ignored: x1 = x0 + 0.5 * mean(y - x0).
    x1, metrics = strategy.aggregate_train(
        1, [_reply(first[a], y[a], 10), _reply(first[b], y[b], 30)]
    )
    assert x1 is not None and metrics is not None
    expected1 = {k: v + 0.5 * ((y[a][k] - v) + (y[b][k] - v)) / 2 for k, v in _as64(x0).items()}
    for name in ("w", "b"):
        np.testing.assert_allclose(x1[name].numpy(), expected1[name], rtol=0, atol=1e-6)
    assert (x1["w"].dtype, x1["b"].dtype) == ("float32", "float64")
    assert metrics["num-examples"] == 40 and metrics["loss"] == pytest.approx(
        (10 * 10 + 30 * 30) / 40
    )
    # Round 2: c still trained on x0 (staleness 1), a fresh on x1 (staleness 0).
    second = Message(
        RecordDict({"arrays": x1, "config": ConfigRecord()}),
        a,
        "train",
        group_id="2",
        run_id=grid.run_id,
    )
    y2a = {"w": np.full((2, 2), 3.0, np.float32), "b": np.array([0.0, 1.0])}
    x2, _ = strategy.aggregate_train(2, [_reply(first[c], y[c]), _reply(second, y2a)])
    assert x2 is not None
    x0_, x1_ = _as64(x0), _as64(x1)
    s1 = 1 / math.sqrt(2)
    for name in ("w", "b"):
        step = s1 * (y[c][name] - x0_[name]) + 1.0 * (y2a[name] - x1_[name])
        np.testing.assert_allclose(x2[name].numpy(), x1_[name] + 0.5 * step / 2, rtol=0, atol=1e-6)


def test_a_custom_staleness_weight_replaces_the_inverse_square_root() -> None:
    grid = SimulationGrid(fl.ClientApp(), 2, seed=0)
    strategy = FedBuff(buffer_size=1, staleness_weight=lambda tau: 0.25**tau)
    x0 = ArrayRecord({"w": np.zeros(2)})
    sent = list(strategy.configure_train(1, x0, ConfigRecord(), grid))
    strategy.aggregate_train(1, [_reply(sent[0], {"w": np.ones(2)})])
    x2, _ = strategy.aggregate_train(2, [_reply(sent[1], {"w": np.full(2, 4.0)})])  # staleness 1
    assert x2 is not None
    np.testing.assert_array_equal(x2["w"].numpy(), np.full(2, 1.0 + 0.25 * 4.0))


def test_inverse_sqrt_staleness_is_the_papers_polynomial_weight() -> None:
    assert [inverse_sqrt_staleness(t) for t in (0, 1, 3, 8)] == [1.0, 1 / math.sqrt(2), 0.5, 1 / 3]


def test_configure_train_keeps_at_most_concurrency_nodes_busy() -> None:
    grid = SimulationGrid(fl.ClientApp(), 5, seed=0)
    strategy = FedBuff(concurrency=2)
    x0 = ArrayRecord({"w": np.zeros(1)})
    assert len(list(strategy.configure_train(1, x0, ConfigRecord(), grid))) == 2
    assert list(strategy.configure_train(1, x0, ConfigRecord(), grid)) == []


def test_a_node_the_loop_reports_done_is_given_work_again() -> None:
    grid = SimulationGrid(fl.ClientApp(), 5, seed=0)
    strategy = FedBuff(concurrency=2)
    x0 = ArrayRecord({"w": np.zeros(1)})
    first = [m.metadata.dst_node_id for m in strategy.configure_train(1, x0, ConfigRecord(), grid)]

    strategy.node_done(first[0])
    again = [m.metadata.dst_node_id for m in strategy.configure_train(2, x0, ConfigRecord(), grid)]

    assert len(again) == 1 and again[0] != first[1]


def test_a_global_model_the_loop_says_no_work_uses_is_forgotten() -> None:
    grid = SimulationGrid(fl.ClientApp(), 2, seed=0)
    strategy = FedBuff(buffer_size=1)
    x0 = ArrayRecord({"w": np.zeros(1)})
    sent = next(iter(strategy.configure_train(1, x0, ConfigRecord(), grid)))

    strategy.forget_models_before(1)

    with pytest.raises(StrategyError, match="FedBuff has no global model for round 1"):
        strategy.aggregate_train(1, [_reply(sent, {"w": np.ones(1)})])


@pytest.mark.parametrize(
    "settings",
    [
        {"buffer_size": 0},
        {"concurrency": 0},
        {"server_learning_rate": 0.0},
        {"staleness_weight": 2},
    ],
)
def test_fedbuff_refuses_settings_it_cannot_work_with(settings: dict[str, Any]) -> None:
    with pytest.raises(StrategyError):
        FedBuff(**settings)


# -- the loop, through a Federation -------------------------------------------------------


def adding_app(
    gate: threading.Event | None = None, stuck_partition: int = -1, fail: bool = False
) -> fl.ClientApp:
    """Client p adds p + 1 to the model; ``stuck_partition`` waits for ``gate`` first."""
    app = fl.ClientApp()

    @app.train()
    def train(msg: Message, ctx: fl.Context) -> Message:
        pid = int(ctx.node_config["partition-id"])
        if fail:
            raise RuntimeError("no data here")
        if pid == stuck_partition and gate is not None:
            gate.wait(timeout=120)
        w = msg.content.array_record("arrays")["w"].numpy() + (pid + 1)
        return _reply(msg, {"w": w})

    return app


def test_two_inline_clients_follow_the_hand_computed_stale_trajectory() -> None:
    fed = fl.Federation(
        adding_app(),
        strategy=FedBuff(buffer_size=1, server_learning_rate=0.5),
        num_clients=2,
        initial_arrays=ArrayRecord({"w": np.zeros(2)}),
        seed=0,
        display="none",
    )
    result = fed.run(rounds=4)
    assert result.history is not None
    partition = {c["node_id"]: c["partition_id"] for c in result.history.clients}
    reports = [r["info"] for r in result.history.strategy_reports]
    # Both start on x0; the first reply is fresh, the second one update stale; then again.
    assert [info["staleness"] for info in reports] == [[0], [1], [0], [1]]
    expected = sum(
        0.5 * inverse_sqrt_staleness(info["staleness"][0]) * (partition[info["nodes"][0]] + 1)
        for info in reports
    )
    np.testing.assert_allclose(result.arrays["w"].numpy(), np.full(2, expected), rtol=0, atol=1e-12)
    second = fl.Federation(
        adding_app(),
        strategy=FedBuff(buffer_size=1, server_learning_rate=0.5),
        num_clients=2,
        initial_arrays=ArrayRecord({"w": np.zeros(2)}),
        seed=0,
        display="none",
    ).run(rounds=4)
    assert second.history is not None
    assert second.arrays == result.arrays
    assert second.history.to_json(include_timings=False) == result.history.to_json(
        include_timings=False
    )


def test_fedbuff_keeps_updating_while_a_client_is_still_training() -> None:
    gate = threading.Event()
    fed = fl.Federation(
        adding_app(gate, stuck_partition=0),
        strategy=FedBuff(buffer_size=2),
        num_clients=4,
        initial_arrays=ArrayRecord({"w": np.zeros(1)}),
        seed=0,
        backend="threads",
        max_workers=4,
        display="none",
    )
    events: list[Event] = []
    fed.subscribe(events.append)
    try:
        result = fed.run(rounds=6)
    finally:
        gate.set()
    assert result.rounds_completed == 6
    assert result.history is not None
    assert 0 not in {c["partition_id"] for c in result.history.clients}  # it never answered
    aggregated = [e for e in events if isinstance(e, RoundAggregated)]
    assert [(e.round, e.num_replies) for e in aggregated] == [(r, 2) for r in range(1, 7)]
    assert [e.round for e in events if isinstance(e, StrategyReport)] == list(range(1, 7))
    assert [e.round for e in events if isinstance(e, RoundStarted)] == list(range(1, 7))


def test_a_client_slower_than_the_timeout_fails_and_the_run_goes_on() -> None:
    stuck = threading.Event()
    app = fl.ClientApp()

    @app.train()
    def train(msg: Message, ctx: fl.Context) -> Message:
        if ctx.node_config["partition-id"] == 1:
            stuck.wait(timeout=120)  # far past the 1 s timeout
        else:
            time.sleep(0.05)  # 30 rounds of this outlast the stuck node's timeout
        return _reply(msg, {"w": msg.content.array_record("arrays")["w"].numpy() + 1})

    fed = fl.Federation(
        app,
        strategy=FedBuff(buffer_size=1),
        num_clients=2,
        initial_arrays=ArrayRecord({"w": np.zeros(1)}),
        seed=0,
        backend="threads",
        max_workers=8,
        timeout=1.0,
        display="none",
    )
    try:
        result = fed.run(rounds=30)
    finally:
        stuck.set()
    assert result.rounds_completed == 30 and result.history is not None
    np.testing.assert_array_equal(result.arrays["w"].numpy(), [30.0])  # only fresh updates of +1
    failures = result.history.failures()
    assert 1 in {f["partition_id"] for f in failures}  # the stuck node, reported as timed out
    assert {f["error_code"] for f in failures} == {ErrorCode.TIMEOUT}


def test_fedbuff_gives_up_with_the_clients_error_when_every_reply_fails() -> None:
    fed = fl.Federation(
        adding_app(fail=True),
        strategy=FedBuff(buffer_size=2),
        num_clients=3,
        initial_arrays=ArrayRecord({"w": np.zeros(1)}),
        seed=0,
        display="none",
    )
    with pytest.raises(AggregationError, match="replies all failed.*no data here"):
        fed.run(rounds=2)


def test_no_more_than_concurrency_clients_train_at_once() -> None:
    active, most = [0], [0]
    lock = threading.Lock()
    app = fl.ClientApp()

    @app.train()
    def train(msg: Message, ctx: fl.Context) -> Message:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.01)
        with lock:
            active[0] -= 1
        return _reply(msg, {"w": msg.content.array_record("arrays")["w"].numpy()})

    fed = fl.Federation(
        app,
        strategy=FedBuff(buffer_size=2, concurrency=2),
        num_clients=6,
        initial_arrays=ArrayRecord({"w": np.zeros(1)}),
        seed=0,
        backend="threads",
        max_workers=6,
        display="none",
    )
    assert fed.run(rounds=5).rounds_completed == 5
    assert most[0] <= 2


def test_a_checkpointed_fedbuff_run_resumes_at_the_next_server_update(tmp_path: Path) -> None:
    def make() -> fl.Federation:
        return fl.Federation(
            adding_app(),
            strategy=FedBuff(buffer_size=2),
            num_clients=3,
            initial_arrays=ArrayRecord({"w": np.zeros(1)}),
            seed=0,
            display="none",
            checkpoint_dir=tmp_path,
        )

    first = make().run(rounds=2)
    resumed = make().resume(rounds=4)
    assert resumed.rounds_completed == 4 and resumed.history is not None
    assert sorted(resumed.train_metrics_clientapp) == [1, 2, 3, 4]
    assert [r["round"] for r in resumed.history.strategy_reports] == [1, 2, 3, 4]
    assert resumed.arrays["w"].numpy()[0] > first.arrays["w"].numpy()[0]


# -- digits with clients of unequal speeds ------------------------------------------------

NUM_CLIENTS, SLOWEST_S = 10, 0.3


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[Any, ...]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    return tuple(
        train_test_split(
            (x / 16.0).astype(np.float32),
            y.astype(np.int64),
            test_size=0.2,
            stratify=y,
            random_state=0,
        )
    )


def _mlp() -> Any:
    import torch

    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def _accuracy(arrays: ArrayRecord) -> float:
    import torch

    _, x_test, _, y_test = _digits()
    net = _mlp()
    net.load_state_dict(arrays.to_torch_state_dict())
    with torch.no_grad():
        return float((net(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())


def digits_app() -> fl.ClientApp:
    """One epoch of SGD on an IID shard, after a delay growing with the partition id."""
    import torch

    app = fl.ClientApp()

    @app.train()
    def train(msg: Message, ctx: fl.Context) -> Message:
        pid = int(ctx.node_config["partition-id"])
        time.sleep(SLOWEST_S * (pid / (NUM_CLIENTS - 1)) ** 2)  # client 0 is fast, client 9 slow
        x_train, _, y_train, _ = _digits()
        rows = np.array_split(np.random.default_rng(0).permutation(len(x_train)), NUM_CLIENTS)[pid]
        x, y = torch.from_numpy(x_train[rows]), torch.from_numpy(y_train[rows])
        net = _mlp()
        net.load_state_dict(msg.content.array_record("arrays").to_torch_state_dict())
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(pid))
        for start in range(0, len(x), 16):
            batch = order[start : start + 16]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
            optimizer.step()
        return _reply(msg, dict(net.state_dict()), examples=len(x))

    return app


def test_fedbuff_trains_digits_past_85_percent_with_clients_of_unequal_speeds() -> None:
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    fed = fl.Federation(
        digits_app(),
        strategy=FedBuff(buffer_size=5),
        num_clients=NUM_CLIENTS,
        initial_arrays=ArrayRecord(_mlp().state_dict()),
        evaluate_fn=lambda rnd, arrays: {"accuracy": _accuracy(arrays)} if rnd == 30 else None,
        seed=0,
        backend="threads",
        max_workers=NUM_CLIENTS,
        display="none",
    )
    result = fed.run(rounds=30)
    assert result.evaluate_metrics_serverapp[30]["accuracy"] >= 0.85
    assert result.history is not None
    updates = [0] * NUM_CLIENTS
    partition = {c["node_id"]: c["partition_id"] for c in result.history.clients}
    for report in result.history.strategy_reports:
        for node in report["info"]["nodes"]:
            updates[partition[node]] += 1
    assert sum(updates) == 30 * 5
