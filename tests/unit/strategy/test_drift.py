"""Scaffold (server and client halves) and FedNova against their papers' formulas."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fedlab.client import ClientApp
from fedlab.context import Context
from fedlab.errors import AggregationError, StrategyError
from fedlab.message import Message
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.simulation import SimulationGrid
from fedlab.strategy import FedAvg, FedNova, Scaffold, ScaffoldClient
from fedlab.strategy.fednova import local_steps_norm

LAYOUT: dict[str, tuple[tuple[int, ...], Any]] = {
    "conv.weight": ((2, 3), np.float32),
    "fc.bias": ((4,), np.float64),
    "scale": ((), np.float32),
}


def _initial() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    return {n: rng.normal(0, 1, s).astype(d) for n, (s, d) in LAYOUT.items()}


def _hand(seed: int, loc: float = 0.0, scale: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: rng.normal(loc, scale, s) for n, (s, _) in LAYOUT.items()}


def _f32(model: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """As sent on the wire: each array in its dtype (controls in the model's float dtype)."""
    return {n: np.asarray(v).astype(LAYOUT[n][1]).astype(np.float64) for n, v in model.items()}


# --- Scaffold, server side ------------------------------------------------------------------------


def test_scaffold_server_moves_x_by_the_mean_update_and_c_by_s_over_n_times_the_mean_delta() -> None:
    num_nodes, eta_g = 5, 0.8
    grid = SimulationGrid(ClientApp(), num_nodes, seed=1)
    ranks = {node: r for r, node in enumerate(sorted(grid.get_node_ids()))}
    strategy = Scaffold(server_learning_rate=eta_g, fraction_train=0.6, min_train_nodes=1)
    strategy.rng.seed(4)
    current = ArrayRecord(_initial())
    x = _f32(_initial())
    c = {n: np.zeros(LAYOUT[n][0]) for n in LAYOUT}
    for rnd in range(1, 4):
        messages = list(strategy.configure_train(rnd, current, ConfigRecord(), grid))
        assert len(messages) == 3  # |S| = 3 of N = 5
        for msg in messages:  # the server sends its control variate c, in the model's dtypes
            sent = msg.content["scaffold-control"]
            for n in LAYOUT:
                assert sent[n].dtype == np.dtype(LAYOUT[n][1]).name
                np.testing.assert_allclose(sent[n].numpy(), c[n].astype(LAYOUT[n][1]), rtol=1e-6, atol=1e-7)
        replies, ys, dcs = [], [], []
        for msg in messages:
            rank = ranks[msg.metadata.dst_node_id]
            y = {n: (x[n] + d).astype(LAYOUT[n][1]) for n, d in _hand(10 * rnd + rank, 0.1 * rank).items()}
            dc = {n: v.astype(LAYOUT[n][1]) for n, v in _hand(500 + 10 * rnd + rank, -0.2, 0.3).items()}
            ys.append(_f32(y))
            dcs.append(_f32(dc))
            metrics = MetricRecord({"num-examples": 10 ** (rank + 1)})  # ignored: the means are unweighted
            content = RecordDict({"arrays": ArrayRecord(y), "scaffold-control-delta": ArrayRecord(dc), "metrics": metrics})
            replies.append(msg.reply(content))
        arrays, _ = strategy.aggregate_train(rnd, replies)
        assert arrays is not None
        s = len(replies)
        x = _f32({n: x[n] + eta_g * sum(y[n] - x[n] for y in ys) / s for n in LAYOUT})
        c = {n: c[n] + (s / num_nodes) * sum(dc[n] for dc in dcs) / s for n in LAYOUT}
        for n in LAYOUT:
            np.testing.assert_allclose(arrays[n].numpy(), x[n], rtol=1e-6, atol=1e-6)
        current = arrays
    state = strategy.state_dict()
    for n in LAYOUT:
        np.testing.assert_allclose(state.arrays["control"][n].numpy(), c[n], rtol=1e-12, atol=1e-12)


def test_scaffold_explains_a_reply_without_its_control_delta() -> None:
    grid = SimulationGrid(ClientApp(), 2, seed=0)
    strategy = Scaffold(min_train_nodes=1)
    [msg, *_] = strategy.configure_train(1, ArrayRecord(_initial()), ConfigRecord(), grid)
    reply = msg.reply(RecordDict({"arrays": msg.content["arrays"], "metrics": MetricRecord({"num-examples": 1})}))
    with pytest.raises(AggregationError, match="'scaffold-control-delta' .*ScaffoldClient.reply_content"):
        strategy.aggregate_train(1, [reply])


# --- Scaffold, client side ------------------------------------------------------------------------


def _instruction(x: dict[str, np.ndarray], c: dict[str, np.ndarray]) -> Message:
    content = RecordDict({"arrays": ArrayRecord(x), "scaffold-control": ArrayRecord(c), "config": ConfigRecord()})
    return Message(content, dst_node_id=9, message_type="train", group_id="1")


def test_scaffold_client_corrects_gradients_and_keeps_option_ii_control_in_context_state() -> None:
    ctx = Context(run_id=1, node_id=9)
    lr, steps = 0.1, 3
    x = {"w": np.array([1.0, -2.0], np.float32), "b": np.array(0.5, np.float32)}
    c = {"w": np.array([0.2, 0.1], np.float32), "b": np.array(-0.3, np.float32)}
    target = {"w": np.array([3.0, 1.0]), "b": np.array(2.0)}
    c_i = {"w": np.zeros(2), "b": np.zeros(())}  # first round: zeros
    for rnd in range(2):
        scaffold = ScaffoldClient(_instruction(x, c), ctx)
        y = {k: v.astype(np.float64) for k, v in x.items()}
        for _ in range(steps):  # gradient of ½‖y − target‖², corrected: g − c_i + c
            grads = {k: v - target[k] for k, v in y.items()}
            corrected = scaffold.correct(grads)
            for k, g in grads.items():
                np.testing.assert_allclose(corrected[k], g - c_i[k] + c[k].astype(np.float64), rtol=1e-6)
                y[k] = y[k] - lr * corrected[k]
        trained = {k: v.astype(np.float32) for k, v in y.items()}

        content = scaffold.reply_content(trained, num_steps=steps, learning_rate=lr, metrics={"num-examples": 4})

        new_c_i = {k: c_i[k] - c[k] + (x[k].astype(np.float64) - trained[k]) / (steps * lr) for k in x}
        stored = ctx.state["scaffold-client-control"]
        delta = content["scaffold-control-delta"]
        for k in x:
            np.testing.assert_allclose(stored[k].numpy(), new_c_i[k], rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(delta[k].numpy(), new_c_i[k] - c_i[k], rtol=1e-5, atol=1e-6)
            assert delta[k].dtype == "float32"
        assert content["arrays"] == ArrayRecord(trained)
        assert content["metrics"] == MetricRecord({"num-examples": 4})
        c_i = new_c_i
        x = trained


def test_scaffold_client_adds_c_minus_c_i_to_a_torch_models_gradients() -> None:
    import torch

    model = torch.nn.Linear(2, 1)
    x = ArrayRecord(model.state_dict())
    c = {"weight": np.array([[0.5, -1.0]], np.float32), "bias": np.array([2.0], np.float32)}
    ctx = Context(run_id=1, node_id=9)
    ctx.state["scaffold-client-control"] = ArrayRecord({"weight": np.array([[0.25, 0.25]]), "bias": np.array([1.0])})
    msg = Message(RecordDict({"arrays": x, "scaffold-control": ArrayRecord(c)}), dst_node_id=9, message_type="train")
    scaffold = ScaffoldClient(msg, ctx)
    model(torch.ones(1, 2)).sum().backward()  # d/dw = [1, 1], d/db = 1
    scaffold.correct_gradients(model)
    torch.testing.assert_close(model.weight.grad, torch.tensor([[1.25, -0.25]]))
    torch.testing.assert_close(model.bias.grad, torch.tensor([2.0]))


def test_scaffold_client_needs_the_servers_control_variate() -> None:
    msg = Message(RecordDict({"arrays": ArrayRecord({"w": np.zeros(1)})}), dst_node_id=9, message_type="train")
    with pytest.raises(StrategyError, match="no server control variate under 'scaffold-control'"):
        ScaffoldClient(msg, Context(run_id=1, node_id=9))


def _quadratic_app(curvatures: list[float], optima: list[float], steps: int, lr: float, scaffold: bool) -> ClientApp:
    """Client i minimises ½·h_i·(w − a_i)² with `steps` steps of SGD."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        pid = int(ctx.node_config["partition-id"])
        h, a = curvatures[pid], optima[pid]
        helper = ScaffoldClient(msg, ctx) if scaffold else None
        w = msg.content["arrays"]["w"].numpy().astype(np.float64)
        for _ in range(steps):
            grad = {"w": h * (w - a)}
            w = w - lr * (helper.correct(grad) if helper else grad)["w"]
        if helper is not None:
            content = helper.reply_content(ArrayRecord({"w": w}), num_steps=steps, learning_rate=lr, metrics={"num-examples": 1})
            return msg.reply(content)
        return msg.reply(RecordDict({"arrays": ArrayRecord({"w": w}), "metrics": MetricRecord({"num-examples": 1})}))

    return app


def test_scaffold_reaches_the_global_optimum_where_fedavg_drifts_away_from_it() -> None:
    curvatures, optima = [1.0, 4.0, 0.5, 2.0], [3.0, -1.0, 6.0, 0.0]
    optimum = sum(h * a for h, a in zip(curvatures, optima)) / sum(curvatures)
    finals = {}
    for name, strategy in (("scaffold", Scaffold(min_train_nodes=1)), ("fedavg", FedAvg(min_train_nodes=1))):
        app = _quadratic_app(curvatures, optima, steps=10, lr=0.1, scaffold=name == "scaffold")
        grid = SimulationGrid(app, 4, seed=0)
        result = strategy.start(grid, ArrayRecord({"w": np.zeros(1)}), num_rounds=60, seed=0)
        finals[name] = float(result.arrays["w"].numpy()[0])
    assert abs(finals["scaffold"] - optimum) < 1e-6
    assert abs(finals["fedavg"] - optimum) > 0.1


# --- FedNova ------------------------------------------------------------------------------------


def test_fednova_normalises_each_update_by_its_local_steps() -> None:
    grid = SimulationGrid(ClientApp(), 4, seed=2)
    ranks = {node: r for r, node in enumerate(sorted(grid.get_node_ids()))}
    examples, steps, rho = [10, 30, 20, 40], [1, 5, 12, 3], 0.9
    strategy = FedNova(client_momentum=rho, min_train_nodes=1)
    strategy.rng.seed(0)
    current = ArrayRecord(_initial())
    x = _f32(_initial())
    for rnd in range(1, 3):
        replies, models, ranks_seen = [], [], []
        for msg in strategy.configure_train(rnd, current, ConfigRecord(), grid):
            rank = ranks[msg.metadata.dst_node_id]
            y = {n: (x[n] + d).astype(LAYOUT[n][1]) for n, d in _hand(rnd * 31 + rank, 0.3 * rank).items()}
            models.append(_f32(y))
            ranks_seen.append(rank)
            metrics = MetricRecord({"num-examples": examples[rank], "local-steps": steps[rank]})
            replies.append(msg.reply(RecordDict({"arrays": ArrayRecord(y), "metrics": metrics})))
        arrays, _ = strategy.aggregate_train(rnd, replies)
        assert arrays is not None
        # Wang et al.: a_i = [τ − ρ(1 − ρ^τ)/(1 − ρ)]/(1 − ρ); x ← x − τ_eff Σ p_i (x − y_i)/a_i
        p = [examples[r] / sum(examples) for r in ranks_seen]
        a = [(steps[r] - rho * (1 - rho ** steps[r]) / (1 - rho)) / (1 - rho) for r in ranks_seen]
        tau_eff = sum(pi * ai for pi, ai in zip(p, a))
        x = _f32({n: x[n] - tau_eff * sum(pi * (x[n] - y[n]) / ai for pi, y, ai in zip(p, models, a)) for n in LAYOUT})
        for n in LAYOUT:
            np.testing.assert_allclose(arrays[n].numpy(), x[n], rtol=1e-6, atol=1e-6)
        current = arrays


def test_fednova_with_equal_local_steps_is_fedavg() -> None:
    assert local_steps_norm(7) == 7.0
    rng = np.random.default_rng(0)
    models = [rng.normal(0, 1, 5) for _ in range(3)]
    results = []
    for strategy in (FedNova(min_train_nodes=1), FedAvg(min_train_nodes=1)):
        grid = SimulationGrid(ClientApp(), 3, seed=0)
        strategy.rng.seed(1)
        messages = list(strategy.configure_train(1, ArrayRecord({"w": np.zeros(5)}), ConfigRecord(), grid))
        replies = [
            m.reply(RecordDict({"arrays": ArrayRecord({"w": models[i]}), "metrics": MetricRecord({"num-examples": i + 1, "local-steps": 4})}))
            for i, m in enumerate(messages)
        ]
        arrays, _ = strategy.aggregate_train(1, replies)
        assert arrays is not None
        results.append(arrays["w"].numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12, atol=1e-15)


def test_fednova_asks_for_local_steps_when_a_client_omits_them() -> None:
    grid = SimulationGrid(ClientApp(), 1, seed=0)
    strategy = FedNova(min_train_nodes=1, min_available_nodes=1)
    [msg] = strategy.configure_train(1, ArrayRecord({"w": np.zeros(1)}), ConfigRecord(), grid)
    reply = msg.reply(RecordDict({"arrays": ArrayRecord({"w": np.ones(1)}), "metrics": MetricRecord({"num-examples": 1})}))
    with pytest.raises(AggregationError, match=r"local steps under 'local-steps' \(> 0\), but node \d+ reported None"):
        strategy.aggregate_train(1, [reply])
