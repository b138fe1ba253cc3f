"""SecAgg+ through a Federation's Grid: the same FedAvg arrays as without it."""

from __future__ import annotations

import numpy as np
import pytest

from fedlab import ArrayRecord, ClientApp, Context, Federation, Message, MetricRecord, RecordDict
from fedlab.events import Event, StrategyReport
from fedlab.mods.secagg import secaggplus_mod
from fedlab.privacy.secagg import SecAggError, SecAggPlus
from fedlab.strategy import FedAvg

DIM = 40


def make_app(drop_partitions: tuple[int, ...] = ()) -> ClientApp:
    app = ClientApp(mods=[secaggplus_mod])

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        pid = int(ctx.node_config["partition-id"])
        if pid in drop_partitions:  # drops out after sharing its keys, before its vector
            raise RuntimeError(f"partition {pid} dropped out")
        arrays = msg.content["arrays"]
        gen = np.random.default_rng(pid + 100 * int(msg.content["config"]["server-round"]))
        w, b = (a.numpy() for a in arrays.values())  # type: ignore[union-attr]
        new = [w - 0.1 * gen.normal(size=w.shape).astype(w.dtype), b + 0.01 * (pid + 1)]
        return msg.reply(RecordDict({"arrays": ArrayRecord(new), "metrics": MetricRecord({"num-examples": 5 + pid})}))

    return app


def run(strategy: object, app: ClientApp, rounds: int = 3) -> tuple[list[np.ndarray], list[Event]]:
    events: list[Event] = []
    fed = Federation(
        app, strategy=strategy, num_clients=8, initial_arrays=[np.zeros((DIM // 2, 2), np.float32), np.zeros(3, np.float32)],
        seed=3, display="none", timeout=30,
    )
    fed.subscribe(events.append)
    result = fed.run(rounds=rounds)
    return result.arrays.to_numpy(), events


def fedavg() -> FedAvg:
    return FedAvg(fraction_train=0.75, fraction_evaluate=0.0, min_train_nodes=2)


def test_fedavg_with_secaggplus_reaches_the_same_arrays_as_without_within_the_quantisation_bound():
    secure = SecAggPlus(fedavg(), num_shares=4, reconstruction_threshold=3, clipping_range=2.0, quantization_range=2**20)
    plain_arrays, _ = run(fedavg(), make_app())
    secure_arrays, events = run(secure, make_app())
    for plain, masked in zip(plain_arrays, secure_arrays):
        # per round at most c / (Q - 1), plus float32 rounding of the arrays
        assert np.max(np.abs(plain - masked)) <= 3 * (secure.error_bound + 1e-6)
    reports = [e for e in events if isinstance(e, StrategyReport) and e.strategy == "SecAggPlus"]
    assert [r.info["secagg_survivors"] for r in reports] == [6, 6, 6]


def test_dropouts_within_tolerance_give_the_survivors_mean():
    secure = SecAggPlus(fedavg(), num_shares=5, reconstruction_threshold=3, clipping_range=2.0)
    drop = (0, 5)
    plain_arrays, _ = run(FedAvg(fraction_train=0.75, fraction_evaluate=0.0, min_train_nodes=2), make_app(drop), rounds=2)
    secure_arrays, events = run(secure, make_app(drop), rounds=2)
    for plain, masked in zip(plain_arrays, secure_arrays):
        assert np.max(np.abs(plain - masked)) <= 2 * (secure.error_bound + 1e-6)
    survivors = [e.info["secagg_survivors"] for e in events if isinstance(e, StrategyReport) and e.strategy == "SecAggPlus"]
    assert len(survivors) == 2 and sum(survivors) < 12  # some sampled clients did drop out


def test_too_many_dropouts_stop_the_run_with_a_clear_error():
    secure = SecAggPlus(fedavg(), num_shares=3, reconstruction_threshold=3, clipping_range=2.0)
    with pytest.raises(SecAggError, match="fewer than reconstruction_threshold=3|cannot reconstruct"):
        run(secure, make_app(tuple(range(6))), rounds=1)
