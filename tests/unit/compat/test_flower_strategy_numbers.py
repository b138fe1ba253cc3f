"""Flower-named strategies compute Flower 1.42's numbers (checked once against Flower 1.42).

Each expectation is derived by hand from Flower's formula (see
/work/shared/notes/flower-strategies.md); running the same replies through real Flower 1.42
gave bit-identical arrays for all twelve strategies over three rounds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from fedlab.compat import flower
from fedlab.server import Grid as FedlabGrid


class _Nodes(FedlabGrid):
    def __init__(self, count: int) -> None:
        super().__init__(run_id=1)
        self._count = count

    def get_node_ids(self) -> list[int]:
        return list(range(1, self._count + 1))

    def get_node_config(self, node_id: int) -> dict[str, bool | int | float | str]:
        return {}

    def push_messages(self, messages: object) -> list[str]:
        return []

    def pull_messages(self, message_ids: object) -> list[object]:
        return []


@pytest.fixture(autouse=True)
def _hook() -> object:
    with flower.enabled():
        yield


def _round(
    strategy: object, rnd: int, arrays: object, values: Sequence[float], sizes: Sequence[int]
) -> object:
    from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
    from flwr.serverapp import Grid

    grid = Grid(_Nodes(len(values)))
    instructions = sorted(
        strategy.configure_train(rnd, arrays, ConfigRecord(), grid),  # type: ignore[attr-defined]
        key=lambda m: m.metadata.dst_node_id,
    )
    assert all(m.content["config"]["server-round"] == rnd for m in instructions)
    replies = [
        Message(
            RecordDict(
                {
                    "arrays": ArrayRecord([np.array([v], np.float32)]),
                    "metrics": MetricRecord({"num-examples": n, "loss": v}),
                }
            ),
            reply_to=m,
        )
        for m, v, n in zip(instructions, values, sizes, strict=True)
    ]
    return strategy.aggregate_train(rnd, replies)  # type: ignore[attr-defined]


def test_fedavg_weights_by_num_examples_in_float32() -> None:
    from flwr.app import ArrayRecord
    from flwr.serverapp.strategy import FedAvg

    arrays, metrics = _round(
        FedAvg(), 1, ArrayRecord([np.zeros(1, np.float32)]), [1.0, 4.0], [1, 3]
    )
    out = arrays.to_numpy_ndarrays()[0]
    assert out.dtype == np.float32 and out.tolist() == [
        np.float32(1.0 * 0.25) + np.float32(4.0 * 0.75)
    ]
    assert dict(metrics) == {"loss": 1.0 * 0.25 + 4.0 * 0.75}


def test_fedadam_uses_flowers_bias_correction_of_round_t_plus_one_and_turns_float64() -> None:
    from flwr.app import ArrayRecord
    from flwr.serverapp.strategy import FedAdam

    strategy = FedAdam(eta=0.1, beta_1=0.9, beta_2=0.99, tau=1e-3)
    arrays, _ = _round(strategy, 1, ArrayRecord([np.zeros(1, np.float32)]), [2.0, 2.0], [1, 1])
    delta = 2.0
    m, v = 0.1 * delta, 0.01 * delta**2
    step = 0.1 * np.sqrt(1 - 0.99**2) / (1 - 0.9**2)  # exponent t+1 = 2 in round 1
    out = arrays.to_numpy_ndarrays()[0]
    assert out.dtype == np.float64
    assert out[0] == pytest.approx(step * m / (np.sqrt(v) + 1e-3), rel=1e-6)


def test_fedyogi_starts_v_at_zero_not_tau_squared() -> None:
    from flwr.app import ArrayRecord
    from flwr.serverapp.strategy import FedYogi

    arrays, _ = _round(FedYogi(), 1, ArrayRecord([np.zeros(1, np.float32)]), [1.0, 1.0], [1, 1])
    m, v = 0.1 * 1.0, 0.01 * 1.0  # v = 0 - 0.01 * 1 * sign(0 - 1)
    assert arrays.to_numpy_ndarrays()[0][0] == pytest.approx(
        0.01 * m / (np.sqrt(v) + 1e-3), rel=1e-6
    )


def test_multikrum_returns_the_weighted_mean_of_the_selected_replies() -> None:
    from flwr.app import ArrayRecord
    from flwr.serverapp.strategy import MultiKrum

    values, sizes = [0.0, 1.0, 2.0, 3.0, 100.0], [1, 1, 1, 3, 1]
    strategy = MultiKrum(num_malicious_nodes=1, num_nodes_to_select=3)
    arrays, metrics = _round(strategy, 1, ArrayRecord([np.zeros(1, np.float32)]), values, sizes)
    # k = n - f - 2 = 2 nearest: scores 0:1+4, 1:1+1, 2:1+1, 3:1+4, 100: far; picks 1, 2, then 0 or 3
    # (tie 5 vs 5: np.argsort over [5, 2, 2, 5, ...] keeps 0 first)
    expected = (1.0 * 1 + 2.0 * 1 + 0.0 * 1) / 3
    assert arrays.to_numpy_ndarrays()[0][0] == pytest.approx(expected, rel=1e-6)
    assert metrics["loss"] == pytest.approx(expected)


def test_bulyan_keeps_the_old_model_with_fewer_than_4f_plus_3_replies() -> None:
    from flwr.app import ArrayRecord
    from flwr.serverapp.strategy import Bulyan

    assert _round(
        Bulyan(num_malicious_nodes=1), 1, ArrayRecord([np.zeros(1, np.float32)]), [1.0] * 6, [1] * 6
    ) == (None, None)


def test_fedmedian_is_unweighted_and_qfedavg_ignores_num_examples_for_arrays() -> None:
    from flwr.app import ArrayRecord
    from flwr.serverapp.strategy import FedMedian

    arrays, _ = _round(
        FedMedian(), 1, ArrayRecord([np.zeros(1, np.float32)]), [1.0, 2.0, 9.0], [100, 1, 1]
    )
    assert arrays.to_numpy_ndarrays()[0].tolist() == [2.0]


def test_fedavgm_momentum_starts_as_the_first_pseudo_gradient() -> None:
    from flwr.app import ArrayRecord
    from flwr.serverapp.strategy import FedAvgM

    strategy = FedAvgM(server_momentum=0.9, server_learning_rate=1.0)
    first, _ = _round(strategy, 1, ArrayRecord([np.zeros(1, np.float32)]), [1.0, 1.0], [1, 1])
    # pg1 = 0 - 1 = -1 and m = pg1, so x1 = 0 - (-1) = 1
    assert first.to_numpy_ndarrays()[0].tolist() == [1.0]
    second, _ = _round(strategy, 2, first, [2.0, 2.0], [1, 1])
    # pg2 = 1 - 2 = -1, m = 0.9 * -1 + -1 = -1.9, x2 = 1 + 1.9
    assert second.to_numpy_ndarrays()[0][0] == pytest.approx(2.9, rel=1e-6)


def test_fedprox_sends_proximal_mu_and_averages_like_fedavg() -> None:
    from flwr.app import ArrayRecord, ConfigRecord
    from flwr.serverapp import Grid
    from flwr.serverapp.strategy import FedProx

    strategy = FedProx(proximal_mu=0.25)
    sent = list(
        strategy.configure_train(1, ArrayRecord([np.zeros(1)]), ConfigRecord(), Grid(_Nodes(3)))
    )
    assert [m.content["config"]["proximal-mu"] for m in sent] == [0.25] * 3
    arrays, _ = _round(
        FedProx(proximal_mu=0.25), 1, ArrayRecord([np.zeros(1, np.float32)]), [1.0, 4.0], [1, 3]
    )
    assert arrays.to_numpy_ndarrays()[0][0] == pytest.approx(3.25)


def test_fedadagrad_steps_by_eta_times_delta_over_its_root_plus_tau() -> None:
    from flwr.app import ArrayRecord
    from flwr.serverapp.strategy import FedAdagrad

    arrays, _ = _round(FedAdagrad(), 1, ArrayRecord([np.zeros(1, np.float32)]), [2.0, 2.0], [1, 1])
    assert arrays.to_numpy_ndarrays()[0][0] == pytest.approx(0.1 * 2.0 / (2.0 + 1e-3), rel=1e-6)


def test_fedtrimmedavg_cuts_int_beta_n_at_each_end_unweighted() -> None:
    from flwr.app import ArrayRecord
    from flwr.serverapp.strategy import FedTrimmedAvg

    values, sizes = [0.0, 1.0, 2.0, 3.0, 100.0], [50, 1, 1, 1, 50]
    arrays, _ = _round(
        FedTrimmedAvg(beta=0.2), 1, ArrayRecord([np.zeros(1, np.float32)]), values, sizes
    )
    assert arrays.to_numpy_ndarrays()[0].tolist() == [2.0]  # mean of 1, 2, 3


def test_krum_picks_the_reply_closest_to_its_n_minus_f_minus_2_neighbours() -> None:
    from flwr.app import ArrayRecord
    from flwr.serverapp.strategy import Krum

    # k = 5 - 1 - 2 = 2 nearest: scores 0: 1+9, 1: 1+4, 3: 4+9, 7: 16+36, 100: far
    arrays, metrics = _round(
        Krum(num_malicious_nodes=1),
        1,
        ArrayRecord([np.zeros(1, np.float32)]),
        [0.0, 1.0, 3.0, 7.0, 100.0],
        [1] * 5,
    )
    assert arrays.to_numpy_ndarrays()[0].tolist() == [1.0]
    assert dict(metrics) == {"loss": 1.0}


def test_qfedavg_weighs_by_loss_not_examples_and_turns_float64() -> None:
    from flwr.app import ArrayRecord
    from flwr.serverapp.strategy import QFedAvg

    q, lr = 0.5, 0.5
    strategy = QFedAvg(client_learning_rate=lr, q=q, train_loss_key="loss")
    values, sizes = [1.0, 3.0], [1000, 1]
    arrays, _ = _round(strategy, 1, ArrayRecord([np.zeros(1, np.float32)]), values, sizes)
    lip = 1 / lr
    grads = [lip * (0.0 - v) for v in values]
    deltas = [(v + 1e-10) ** q * g for v, g in zip(values, grads, strict=True)]
    hs = [
        q * (v + 1e-10) ** (q - 1) * g**2 + lip * (v + 1e-10) ** q
        for v, g in zip(values, grads, strict=True)
    ]
    out = arrays.to_numpy_ndarrays()[0]
    assert out.dtype == np.float64
    assert out[0] == pytest.approx(0.0 - sum(deltas) / sum(hs), rel=1e-6)
