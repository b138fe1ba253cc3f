"""Federated StandardScaler statistics equal the pooled ones; no row leaves a client."""

from __future__ import annotations

import numpy as np
from fedlab_sklearn import ScalerStats, add_scaler_query, federated_scaler_stats
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

import fedlab as fl
from fedlab import Context, Grid

X, _ = load_breast_cancer(return_X_y=True)
PARTS = np.array_split(np.arange(len(X)), [50, 170, 300, 310])  # unequal sizes, 5 clients


def test_federated_scaler_statistics_equal_the_pooled_standard_scaler() -> None:
    app = add_scaler_query(fl.ClientApp(), lambda pid, n: X[PARTS[pid]])
    found: dict[str, ScalerStats] = {}
    server = fl.ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        found["stats"] = federated_scaler_stats(grid)

    fl.Federation(app, server_app=server, num_clients=5, seed=0, display="none").run(rounds=1)
    stats, pooled = found["stats"], StandardScaler().fit(X)
    assert stats.count == len(X)
    assert np.allclose(stats.mean, pooled.mean_, rtol=1e-12, atol=0)
    assert np.allclose(stats.var, pooled.var_, rtol=1e-9, atol=0)
    scaler = stats.to_scaler()
    assert np.allclose(scaler.transform(X), pooled.transform(X), rtol=0, atol=1e-9)
    assert scaler.n_samples_seen_ == pooled.n_samples_seen_


def test_a_reply_carries_only_three_aggregates() -> None:
    record = ScalerStats.of(X[PARTS[1]]).to_arrays()
    assert list(record) == ["count", "sum", "sum_sq"]
    assert [a.shape for a in record.values()] == [(), (30,), (30,)]
