"""The comparison dashboard without a browser: curves, heatmap, table, metric switch, PNG."""

from __future__ import annotations

from typing import Any

import comm
import numpy as np
import pytest
from comm.base_comm import BaseComm

import fedlab as fl
from fedlab.dashboard import CompareDashboard
from fedlab.strategy import FedAvg, FedProx
from tests.unit.comparison.federations import make_fed


class QuietComm(BaseComm):
    """A kernel comm that keeps what a widget sends (no kernel in these tests)."""

    def __init__(self, **kwargs: Any) -> None:
        self.sent: list[dict[str, Any]] = []
        super().__init__(**kwargs)

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any) -> None:
        self.sent.append({"type": msg_type, "data": data})


@pytest.fixture(autouse=True)
def quiet_comms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(comm, "create_comm", lambda **kwargs: QuietComm(**kwargs))


def three() -> dict[str, fl.Federation]:
    def prox(mu: float) -> FedProx:
        return FedProx(proximal_mu=mu, fraction_train=0.5, fraction_evaluate=0.0, min_train_nodes=1)

    return {
        "FedAvg": make_fed(strategy=FedAvg(fraction_train=0.5, fraction_evaluate=0.0, min_train_nodes=1)),
        "FedProx 0.1": make_fed(strategy=prox(0.1), config={"step": 2.0}),
        "FedProx 1": make_fed(strategy=prox(1.0), config={"step": 3.0}),
    }


class Frames:
    """Every state the view sent: how many curves had points after each flush."""

    def __init__(self, view: CompareDashboard) -> None:
        self.points: list[list[int]] = []
        view.observe(self._seen, names="curves")

    def _seen(self, change: dict[str, Any]) -> None:
        self.points.append([sum(v is not None for v in c["mean"]) for c in change["new"]])


def test_a_comparison_of_three_draws_three_curves_round_by_round() -> None:
    feds = three()
    view = CompareDashboard(list(feds), max_rate=1e9)  # every event is sent
    frames = Frames(view)
    compared = fl.compare(feds, rounds=3, view=view)
    assert frames.points[-1] == [3, 3, 3]
    # Live: the first federation's curve grew 1, 2, 3 before the second had any point.
    firsts = [p for p in frames.points if p[1] == 0]
    assert [p[0] for p in firsts if p[0]] == sorted(p[0] for p in firsts if p[0])
    assert {1, 2, 3} <= {p[0] for p in firsts}
    for curve, name in zip(view.curves, feds, strict=True):
        history = compared[name].history
        assert history is not None and curve["name"] == name
        for r, mean in zip(range(1, 4), curve["mean"], strict=True):
            losses = [c["metrics"]["loss"] for c in history.clients if c["round"] == r]
            assert mean == pytest.approx(np.mean(losses), rel=1e-6)
            assert curve["p10"][r - 1] == pytest.approx(np.percentile(losses, 10), rel=1e-6)
    assert view.status == "finished: 3 federations"
    assert view.table_columns == ["federation", "strategy", "rounds", "train:loss (mean)", "server:norm"]
    assert [row[:3] for row in view.table] == [
        ["FedAvg", "FedAvg", 3], ["FedProx 0.1", "FedProx", 3], ["FedProx 1", "FedProx", 3]
    ]
    for row, name in zip(view.table, feds, strict=True):
        history = compared[name].history
        assert history is not None
        assert row[4] == pytest.approx(history.metric("norm", "server")[3])


def test_switching_the_metric_relabels_curves_heatmap_and_table_together() -> None:
    feds = three()
    view = CompareDashboard(list(feds))
    fl.compare(feds, rounds=2, view=view)
    assert view.shown_metric == "train:loss" and "train:num-examples" in view.metrics
    view.metric = "train:num-examples"  # as the browser's picker sets it
    assert view.shown_metric == "train:num-examples"
    assert view.heat["metric"] == "train:num-examples"
    assert view.table_columns[3] == "train:num-examples (mean)"
    grid = view.models["FedProx 1"].grid("train:num-examples")
    assert view.heat_of == "FedProx 1"  # the last federation that ran
    sent = np.frombuffer(view.heat_values, "<f4").reshape(view.heat["rows"], view.heat["cols"])
    assert np.array_equal(sent, grid, equal_nan=True)
    view.heat_of = "FedAvg"  # the heatmap switcher
    fed_avg = view.models["FedAvg"].grid("train:num-examples")
    assert view.heat["federation"] == "FedAvg"
    assert (view.heat["rows"], view.heat["cols"]) == fed_avg.shape
    sent = np.frombuffer(view.heat_values, "<f4").reshape(fed_avg.shape)
    assert np.array_equal(sent, fed_avg, equal_nan=True)


def test_parent_and_fork_show_together_and_the_end_adds_a_png(tmp_path: Any) -> None:
    fed = make_fed(tmp_path / "p", checkpoint_keep="all")
    parent = fed.run(rounds=4)
    forked = fed.fork(round=2, config={"step": 5.0})
    view = CompareDashboard(["parent", "fork"])
    fl.compare({"parent": parent, "fork": forked}, view=view)
    a, b = view.curves
    assert a["mean"][:2] == b["mean"][:2] and a["mean"][2:] != b["mean"][2:]
    from fedlab.dashboard.compare_widget import compare_png

    png = compare_png(view.models, view.shown_metric)
    assert png is not None and png.startswith(b"\x89PNG")
    data, _ = view.bundle(png)
    assert "image/png" in data and "application/vnd.jupyter.widget-view+json" in data
