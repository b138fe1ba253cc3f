"""Adaptive clipping (Andrew et al. 2021): exact trajectories at quantiles 0 and 1, the median reached."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from fedlab import Federation
from fedlab.client import ClientApp
from fedlab.message import Message
from fedlab.privacy import DPClientAdaptive, DPServerAdaptive
from fedlab.records import ArrayRecord, MetricRecord, RecordDict
from fedlab.strategy import FedAvg

NORMS = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]  # client i's update always has norm NORMS[i]


def _app(clip_on_client: bool) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Any) -> Message:
        norm = NORMS[ctx.node_config["partition-id"]]
        x = msg.content["arrays"]["x"].numpy()
        update = np.zeros_like(x)
        update[0] = norm
        metrics: dict[str, Any] = {"num-examples": 1}
        if clip_on_client:  # what adaptiveclipping_mod does
            bound = float(msg.content["config"]["dp-clipping-norm"])
            metrics["dp-norm-bit"] = int(norm <= bound)
            update *= min(1.0, bound / norm)
        return msg.reply(RecordDict({"arrays": ArrayRecord({"x": x + update}), "metrics": MetricRecord(metrics)}))

    return app


def _by_hand(start: float, quantile: float, lr: float, rounds: int) -> list[float]:
    norms, out = NORMS, [start]
    for _ in range(rounds - 1):
        c = out[-1]
        fraction = sum(n <= c for n in norms) / len(norms)
        out.append(c * math.exp(-lr * (fraction - quantile)))
    return out


@pytest.mark.parametrize("wrapper", [DPServerAdaptive, DPClientAdaptive])
@pytest.mark.parametrize(("quantile", "start"), [(0.0, 8.5), (1.0, 1.5)])
def test_adaptive_clipping_follows_the_exact_trajectory(wrapper: Any, quantile: float, start: float) -> None:
    inner = FedAvg(fraction_evaluate=0.0, min_train_nodes=2)
    strategy = wrapper(inner, 0.0, len(NORMS), initial_clipping_norm=start,
                       target_clipped_quantile=quantile, clip_norm_lr=0.5, clipped_count_stddev=0.0)
    fed = Federation(_app(wrapper is DPClientAdaptive), strategy=strategy, num_clients=len(NORMS), seed=1,
                     display="none", initial_arrays=ArrayRecord({"x": np.zeros(3)}))
    fed.run(rounds=6)
    assert fed.history is not None
    used = [row["clipping_norm"] for row in fed.history.privacy]
    assert used == pytest.approx(_by_hand(start, quantile, 0.5, 6), rel=1e-12)
    expected_next = _by_hand(start, quantile, 0.5, 7)[-1]
    assert strategy.clipping_norm == pytest.approx(expected_next, rel=1e-12)
    # Quantile 0 only shrinks C, quantile 1 only grows it.
    steps = np.diff(used)
    assert (steps < 0).all() if quantile == 0.0 else (steps > 0).all()


def test_adaptive_clipping_converges_to_the_median_norm() -> None:
    strategy = DPServerAdaptive(FedAvg(), 0.0, len(NORMS), initial_clipping_norm=0.1,
                                target_clipped_quantile=0.5, clip_norm_lr=0.2, clipped_count_stddev=0.0)
    for _ in range(200):
        strategy.update_clipping_norm([float(n <= strategy.clipping_norm) for n in NORMS])
    assert abs(strategy.clipping_norm - float(np.median(NORMS))) < 0.25


def test_count_noise_adjusts_the_update_noise_as_andrew_et_al_theorem_1() -> None:
    strategy = DPServerAdaptive(FedAvg(), 1.0, 100)  # sigma_b = m / 20 = 5
    assert strategy.clipped_count_stddev == 5.0
    assert strategy.update_noise_multiplier() == pytest.approx((1.0 - (2 * 5.0) ** -2) ** -0.5)
