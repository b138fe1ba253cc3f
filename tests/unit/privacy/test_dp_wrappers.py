"""The DP wrappers tested as TensorFlow Privacy tests its queries: exact limits, exact norms, noise std."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fedlab import Federation
from fedlab.client import ClientApp
from fedlab.errors import FederationError, StrategyError
from fedlab.message import Message
from fedlab.privacy import DPClientFixed, DPServerFixed, PrivacyAccountant
from fedlab.records import ArrayRecord, MetricRecord, RecordDict
from fedlab.strategy import FedAvg

SHAPES = {"w": (3, 4), "b": (4,)}


def _initial(dtype: Any = np.float32) -> ArrayRecord:
    rng = np.random.default_rng(0)
    return ArrayRecord({k: rng.normal(0, 1, s).astype(dtype) for k, s in SHAPES.items()})


def _app(scale: float = 0.1) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Any) -> Message:
        pid, rnd = ctx.node_config["partition-id"], msg.content["config"]["server-round"]
        rng = np.random.default_rng([pid, rnd])
        arrays = msg.content["arrays"]
        out = {k: (a.numpy() + rng.normal(scale, scale, a.shape)).astype(a.dtype) for k, a in arrays.items()}
        metrics = MetricRecord({"num-examples": 10, "loss": float(pid)})
        return msg.reply(RecordDict({"arrays": ArrayRecord(out), "metrics": metrics}))

    return app


def _run(strategy: Any, rounds: int = 3, clients: int = 4, app: ClientApp | None = None,
         initial: ArrayRecord | None = None) -> tuple[Federation, Any]:
    fed = Federation(app or _app(), strategy=strategy, num_clients=clients, seed=3, display="none",
                     backend="inline", initial_arrays=initial if initial is not None else _initial())
    return fed, fed.run(rounds=rounds)


def _plain() -> FedAvg:
    return FedAvg(fraction_evaluate=0.0, min_train_nodes=2, min_available_nodes=2)


@pytest.mark.parametrize("wrapper", [DPServerFixed, DPClientFixed])
def test_no_clipping_and_no_noise_gives_exactly_fedavg(wrapper: Any) -> None:
    plain, plain_result = _run(_plain())
    private, private_result = _run(wrapper(_plain(), noise_multiplier=0.0, clipping_norm=1e9, num_sampled_clients=4))
    assert plain.history is not None and private.history is not None
    expected, got = plain.history, private.history
    assert expected.rounds_completed == got.rounds_completed == 3
    a, b = plain_result.arrays, private_result.arrays
    for name in SHAPES:
        assert a[name].numpy().dtype == b[name].numpy().dtype
        assert a[name].numpy().tobytes() == b[name].numpy().tobytes()  # bit for bit
    assert expected.metric("loss") == got.metric("loss")


def test_server_side_clipping_gives_an_update_of_norm_exactly_c() -> None:
    initial = _initial(np.float64)
    wrapped = FedAvg(fraction_evaluate=0.0, min_train_nodes=1, min_available_nodes=1)
    _, result = _run(DPServerFixed(wrapped, 0.0, clipping_norm=0.75, num_sampled_clients=1),
               rounds=1, clients=3, app=_app(scale=5.0), initial=initial)
    new = result.arrays
    norm = np.sqrt(sum(np.sum((new[k].numpy() - initial[k].numpy()) ** 2) for k in SHAPES))
    assert norm == pytest.approx(0.75, rel=1e-12)


def test_noise_std_over_1000_draws_is_within_10_percent_of_z_c_over_m() -> None:
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Any) -> Message:  # returns what it got: a zero update
        return msg.reply(RecordDict({"arrays": msg.content["arrays"], "metrics": MetricRecord({"num-examples": 1})}))

    initial = ArrayRecord({"x": np.zeros(1000, np.float64)})
    z, c, m = 1.3, 2.0, 4
    _, result = _run(DPServerFixed(_plain(), z, c, num_sampled_clients=m), rounds=1, clients=6, app=app,
               initial=initial)
    draws = result.arrays["x"].numpy()
    assert abs(draws.std() - z * c / m) / (z * c / m) < 0.1
    assert abs(draws.mean()) < 4 * z * c / m / np.sqrt(1000)


def test_a_seeded_run_reports_privacy_spent_every_round_into_history() -> None:
    z, m, n = 1.0, 4, 10
    fed, _ = _run(DPServerFixed(_plain(), z, 1.0, num_sampled_clients=m, delta=1e-4), rounds=3, clients=n)
    assert fed.history is not None
    spent = fed.history.privacy
    assert [row["round"] for row in spent] == [1, 2, 3]
    assert all(row["sampling"] == "fixed-size" and row["num_sampled"] == m and row["population"] == n
               for row in spent)
    for row in spent:
        accountant = PrivacyAccountant(z, 1e-4)
        accountant.step(m, n, count=row["steps"])
        assert row["epsilon"] == accountant.epsilon()
    assert spent[0]["epsilon"] < spent[1]["epsilon"] < spent[2]["epsilon"]
    clients_per_round = [len({c["node_id"] for c in fed.history.clients if c["round"] == r}) for r in (1, 2, 3)]
    assert clients_per_round == [m, m, m]  # exactly m sampled, as the accountant assumes
    replayed = [e for e in fed.history.replay() if type(e).__name__ == "PrivacySpent"]
    assert len(replayed) == 3


def test_a_seeded_noised_run_is_reproducible_noise_included() -> None:
    def once() -> tuple[Any, Any]:
        fed, result = _run(DPServerFixed(_plain(), 1.0, 0.5, num_sampled_clients=3), rounds=2, clients=6)
        return fed.history.privacy, result.arrays  # type: ignore[union-attr]

    (spent_a, arrays_a), (spent_b, arrays_b) = once(), once()
    assert spent_a == spent_b
    assert all(arrays_a[k].numpy().tobytes() == arrays_b[k].numpy().tobytes() for k in SHAPES)


def test_client_side_clipping_sends_the_norm_and_refuses_an_unclipped_update() -> None:
    seen: list[float] = []
    app = ClientApp()  # its handler does not clip: its replies must be refused

    @app.train()
    def train(msg: Message, ctx: Any) -> Message:
        seen.append(float(msg.content["config"]["dp-clipping-norm"]))
        arrays = msg.content["arrays"]
        out = {k: a.numpy() + np.float32(5.0) for k, a in arrays.items()}
        return msg.reply(RecordDict({"arrays": ArrayRecord(out), "metrics": MetricRecord({"num-examples": 1})}))

    fed = Federation(app, strategy=DPClientFixed(_plain(), 0.0, 0.5, num_sampled_clients=2), num_clients=3,
                     seed=0, display="none", initial_arrays=_initial())
    with pytest.raises(FederationError, match="did not clip; add fixedclipping_mod"):
        fed.run(rounds=1)
    assert seen and set(seen) == {0.5}


def test_wrapper_refuses_settings_that_break_its_sampling() -> None:
    with pytest.raises(StrategyError, match="fraction_train"):
        DPServerFixed(FedAvg(fraction_train=0.5), 1.0, 1.0, num_sampled_clients=4)
    with pytest.raises(StrategyError, match="min_train_nodes"):
        DPServerFixed(FedAvg(min_train_nodes=5), 1.0, 1.0, num_sampled_clients=4)


def test_a_wrapper_around_a_default_fedavg_runs_a_train_only_client_app() -> None:
    # Left at its default, the wrapped FedAvg settles to no client evaluation, as FedAvg alone does.
    _, result = _run(DPServerFixed(FedAvg(), 0.5, 1.0, num_sampled_clients=3), rounds=2, clients=5)
    assert result.rounds_completed == 2


def test_state_dict_survives_json_and_restores_norm_epsilon_and_rngs() -> None:
    import json

    from fedlab.privacy import DPServerAdaptive
    from fedlab.strategy import StrategyState

    def make() -> DPServerAdaptive:
        return DPServerAdaptive(_plain(), 1.0, 4, initial_clipping_norm=0.3, clipped_count_stddev=2.0)

    first = make()
    _run(first, rounds=2, clients=6)
    saved = first.state_dict()
    values = json.loads(json.dumps(saved.values))
    second = make()
    second.load_state_dict(StrategyState(arrays=dict(saved.arrays), values=values))
    assert second.clipping_norm == first.clipping_norm != 0.3
    assert second.accountant.steps == 2 and second.accountant.epsilon() == first.accountant.epsilon()
    assert json.loads(json.dumps(second.state_dict().values)) == values  # noise RNG included
