"""Federated pandas statistics equal the pooled ones, through a real fedlab Federation."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

import fedlab as fl
from fedlab_pandas import analytics_client_app, analytics_server_app

CLIENTS = 6


def generated(pid: int) -> pd.DataFrame:
    rng = np.random.default_rng(pid)
    n = int(rng.integers(40, 300))
    frame = pd.DataFrame({
        "x": rng.normal(1e6 + 50 * pid, 3.0, n),  # far from 0: naive sums of squares would lose digits
        "y": rng.exponential(2.0 + pid, n),
        "kind": rng.choice(["a", "b", "c"], n, p=[0.6, 0.35, 0.05]),
    })
    frame.loc[rng.random(n) < 0.1, "y"] = np.nan  # missing values are skipped, as pandas does
    return frame


def wine(pid: int) -> pd.DataFrame:
    frame = load_wine(as_frame=True).frame
    return frame.iloc[np.arange(len(frame)) % CLIENTS == pid].reset_index(drop=True)


def run(load: Any, columns: list[str], **options: Any) -> Any:
    client_min = options.pop("client_min_count", 0)
    app = analytics_client_app(lambda ctx: load(ctx.node_config["partition-id"]), min_count=client_min)
    server, report = analytics_server_app(columns, **options)
    fl.Federation(app, server_app=server, num_clients=CLIENTS, seed=0, display="none").run(rounds=1)
    return report


@pytest.mark.parametrize("load, columns", [(generated, ["x", "y"]), (wine, ["alcohol", "proline", "magnesium"])])
def test_count_mean_variance_and_histograms_equal_the_pooled_ones(load: Any, columns: list[str]) -> None:
    pooled = pd.concat([load(i) for i in range(CLIENTS)], ignore_index=True)
    report = run(load, columns, bins=12, quantiles=(0.0, 0.1, 0.5, 0.9, 1.0), sketch_bins=1000)
    got = report.describe
    assert list(got["count"]) == [int(pooled[c].count()) for c in sorted(columns)]
    for c in columns:
        assert np.allclose(got.loc[c, "mean"], pooled[c].mean(), rtol=1e-12, atol=0)
        assert np.allclose(got.loc[c, "var"], pooled[c].var(), rtol=1e-12, atol=0)
        hist = report.histograms[c]
        values = pooled[c].dropna().to_numpy()
        assert hist.edges[0] == values.min() and hist.edges[-1] == values.max() and len(hist.edges) == 13
        assert hist.counts == np.histogram(values, bins=hist.edges)[0].tolist()  # exactly
        ordered = np.sort(values)
        for est in report.quantiles[c]:
            truth = ordered[est.rank - 1]
            assert est.value_error == pytest.approx((values.max() - values.min()) / 1000)
            assert abs(est.value - truth) <= est.value_error
            assert abs(int((values <= est.value).sum()) - est.rank) <= est.rank_error
            assert truth == np.quantile(values, est.q, method="inverted_cdf")
        assert report.quantiles[c][0].value == values.min() and report.quantiles[c][-1].value == values.max()


def test_grouped_statistics_equal_pandas_groupby() -> None:
    pooled = pd.concat([generated(i) for i in range(CLIENTS)], ignore_index=True)
    report = run(generated, ["x", "y"], group_by="kind", edges={"x": [1e6 - 10, 1e6, 1e6 + 300], "y": [0, 1, 5, 50]},
                 quantiles=(0.5,))
    for (kind, column), row in report.describe.iterrows():
        # Series.var (two-pass) and not groupby().var(): pandas' grouped variance is a one-pass
        # update that is itself ~1e-11 off on this data (checked against exact fractions).
        expected = pooled.loc[pooled["kind"] == kind, column]
        assert row["count"] == expected.count()
        assert np.allclose(row["mean"], expected.mean(), rtol=1e-12, atol=0)
        assert np.allclose(row["var"], expected.var(), rtol=1e-12, atol=0)
        assert np.allclose(row["mean"], pooled.groupby("kind")[column].mean()[kind], rtol=1e-12, atol=0)
    assert len(report.describe) == 6
    for (kind, column), hist in report.histograms.items():
        values = pooled.loc[pooled["kind"] == kind, column].dropna()
        assert hist.counts == np.histogram(values, bins=hist.edges)[0].tolist()
    est = report.quantiles[("c", "y")][0]
    values = np.sort(pooled.loc[pooled["kind"] == "c", "y"].dropna().to_numpy())
    assert abs(est.value - values[est.rank - 1]) <= est.value_error


def test_groups_smaller_than_k_never_leave_a_client() -> None:
    k = 15
    report = run(generated, ["x"], group_by="kind", client_min_count=k, quantiles=())
    reported = [generated(i) for i in range(CLIENTS)]
    # Only the clients whose group has at least k rows contribute to that group.
    for kind in "abc":
        parts = [f.loc[f["kind"] == kind, "x"] for f in reported if (f["kind"] == kind).sum() >= k]
        if not parts:
            assert (kind, "x") not in report.describe.index
            continue
        kept = pd.concat(parts)
        assert report.describe.loc[(kind, "x"), "count"] == len(kept)
        assert np.allclose(report.describe.loc[(kind, "x"), "mean"], kept.mean(), rtol=1e-12, atol=0)
    small = sum(int((f["kind"] == "c").sum()) < k for f in reported)
    assert small == CLIENTS and ("c", "x") not in report.describe.index  # the rare group really was withheld by some clients
    # The server can raise the threshold but not lower it below the client's.
    lowered = run(generated, ["x"], group_by="kind", client_min_count=k, min_count=1, quantiles=())
    assert lowered.describe.equals(report.describe)
    raised = run(generated, ["x"], group_by="kind", min_count=10_000, quantiles=())
    assert len(raised.describe) == 0 and raised.histograms == {}


def test_a_missing_column_fails_the_run_with_what_to_do() -> None:
    with pytest.raises(Exception, match="no column"):
        run(generated, ["nope"], quantiles=())


def test_import_fedlab_does_not_import_pandas() -> None:
    code = ("import sys, fedlab; fedlab.Federation; fedlab.ClientApp; fedlab.ServerApp; "
            "print(sorted(m for m in ('pandas', 'fedlab_pandas', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
