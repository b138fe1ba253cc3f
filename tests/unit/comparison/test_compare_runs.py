"""fl.compare: each federation ends exactly as it does when run alone, on any backend."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

import fedlab as fl
from fedlab.errors import FederationError
from fedlab.events import Event
from fedlab.strategy import FedAvg, FedProx
from tests.unit.comparison.federations import make_fed


def _same_run(a: fl.Result, b: fl.Result) -> None:
    assert a.arrays == b.arrays
    assert a.history is not None and b.history is not None
    assert a.history.to_json(include_timings=False) == b.history.to_json(include_timings=False)
    assert a.train_metrics_clientapp == b.train_metrics_clientapp
    assert a.evaluate_metrics_serverapp == b.evaluate_metrics_serverapp


@pytest.mark.parametrize("backend", ["inline", "threads", "processes"])
def test_each_compared_federation_equals_running_it_alone(backend: str) -> None:
    def prox() -> fl.Federation:
        strategy = FedProx(proximal_mu=0.1, fraction_train=0.5, fraction_evaluate=0.0, min_train_nodes=1)
        return make_fed(strategy=strategy, config={"step": 0.5}, backend=backend)

    compared = fl.compare({"FedAvg": make_fed(backend=backend), "FedProx": prox()}, rounds=3)
    assert list(compared) == ["FedAvg", "FedProx"]
    _same_run(compared["FedAvg"], make_fed(backend=backend).run(rounds=3))
    _same_run(compared["FedProx"], prox().run(rounds=3))
    assert compared["FedAvg"].arrays != compared["FedProx"].arrays  # really two different runs


def test_variants_of_one_federation_differ_only_in_their_strategy_or_config() -> None:
    def avg() -> FedAvg:
        return FedAvg(fraction_train=0.5, fraction_evaluate=0.0, min_train_nodes=1)

    def prox() -> FedProx:
        return FedProx(proximal_mu=0.1, fraction_train=0.5, fraction_evaluate=0.0, min_train_nodes=1)

    by_strategy = fl.compare(make_fed(), strategies=[avg(), prox(), avg()], rounds=2)
    assert list(by_strategy) == ["FedAvg", "FedProx", "FedAvg (2)"]
    _same_run(by_strategy["FedProx"], make_fed(strategy=prox()).run(rounds=2))
    _same_run(by_strategy["FedAvg (2)"], make_fed(strategy=avg()).run(rounds=2))

    by_config = fl.compare(make_fed(), configs={"step 1": {"step": 1.0}, "step 3": {"step": 3.0}}, rounds=2)
    _same_run(by_config["step 3"], make_fed(config={"step": 3.0}).run(rounds=2))
    assert by_config["step 1"].arrays != by_config["step 3"].arrays


def test_the_combined_history_stacks_every_round_with_a_federation_column() -> None:
    compared = fl.compare({"a": make_fed(), "b": make_fed(config={"step": 2.0})}, rounds=3)
    table = compared.history.to_pandas()
    assert list(table.columns[:2]) == ["federation", "round"]
    assert table[["federation", "round"]].values.tolist() == [
        [name, r] for name in "ab" for r in (0, 1, 2, 3)  # round 0: the initial model's norm
    ]
    b_alone = compared["b"].history
    assert b_alone is not None
    assert table[table.federation == "b"]["server.norm"].tolist() == [
        b_alone.metric("norm", "server")[r] for r in (0, 1, 2, 3)
    ]
    clients = compared.history.to_pandas("clients")
    assert sorted(set(clients.federation)) == ["a", "b"] and len(clients) == 2 * 3 * 3
    final = compared.final()
    assert list(final.index) == ["a", "b"] and final["round"].tolist() == [3, 3]
    assert final.loc["b", "server.norm"] == b_alone.metric("norm", "server")[3]


def test_a_view_receives_every_event_tagged_with_its_federation_and_results_pass_through() -> None:
    seen: list[tuple[str, str]] = []

    class View:
        def feed(self, name: str, event: Event) -> None:
            seen.append((name, type(event).__name__))

        def idle(self) -> None:
            pass

    earlier = make_fed(config={"step": 2.0}).run(rounds=2)
    compared = fl.compare({"new": make_fed(), "earlier": earlier}, rounds=2, view=View())
    assert compared["earlier"] is earlier
    names = [n for n, _ in seen]
    assert names.index("earlier") > max(i for i, n in enumerate(names) if n == "new")
    for name in ("new", "earlier"):
        kinds = [k for n, k in seen if n == name]
        assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"
        assert kinds.count("RoundAggregated") == 2


def test_compare_refuses_what_it_cannot_compare_naming_the_fix() -> None:
    fed = make_fed()
    with pytest.raises(FederationError, match="same Federation object twice"):
        fl.compare({"a": fed, "b": fed})
    with pytest.raises(FederationError, match="strategies="):
        fl.compare(fed)
    with pytest.raises(FederationError, match="non-empty dict"):
        fl.compare({})
    strategy = FedAvg()
    with pytest.raises(FederationError, match="new one for each"):
        fl.compare(fed, strategies={"x": strategy, "y": strategy})
    with pytest.raises(FederationError, match="got int for 'a'"):
        fl.compare({"a": 3})  # type: ignore[dict-item]


def test_plot_compare_draws_one_labelled_line_and_band_per_federation() -> None:
    compared = fl.compare({"a": make_fed(), "b": make_fed(config={"step": 2.0})}, rounds=3)
    figure = fl.plot_compare(compared, "train:loss")
    (ax,) = figure.axes
    assert [line.get_label() for line in ax.get_lines()] == ["a", "b"]
    for line, name in zip(ax.get_lines(), "ab", strict=True):
        history = compared[name].history
        assert history is not None
        means = [np.mean([c["metrics"]["loss"] for c in history.clients if c["round"] == r]) for r in (1, 2, 3)]
        assert np.allclose(line.get_ydata(), means)
    assert len(ax.collections) == 2  # the two p10–p90 bands
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]


def test_a_failing_federation_is_named_in_the_comparisons_error() -> None:
    broken = fl.ClientApp()

    @broken.train()
    def train(msg: fl.Message, ctx: fl.Context) -> fl.Message:
        raise ValueError("this client is broken on purpose")

    bad = fl.Federation(broken, strategy=FedAvg(fraction_evaluate=0.0), num_clients=5,
                        initial_arrays=[np.zeros(2)], seed=0, display="none")
    with pytest.raises(FederationError, match=r"The federation 'broken' of the comparison failed: No round"):
        fl.compare({"fine": make_fed(), "broken": bad}, rounds=1)


def test_partitionings_are_compared_as_variants_with_their_own_number_of_clients() -> None:
    from fedlab.datasets import (
        DirichletPartitioner,
        FederatedDataset,
        IidPartitioner,
        load_partition,
    )

    app = fl.ClientApp()

    @app.train()
    def train(msg: fl.Message, ctx: fl.Context) -> fl.Message:
        labels = np.asarray(load_partition(ctx, "train")["label"], np.float64)
        w = msg.content.array_record("arrays").to_numpy()[0] * 0.5 + labels.mean()
        metrics = fl.MetricRecord({"num-examples": len(labels), "mean-label": float(labels.mean())})
        return msg.reply(fl.RecordDict({"arrays": fl.ArrayRecord([w]), "metrics": metrics}))

    def split(partitioner: object) -> FederatedDataset:
        return FederatedDataset.from_sklearn("iris", partitioners={"train": partitioner})  # type: ignore[dict-item]

    def fed(dataset: FederatedDataset) -> fl.Federation:
        return fl.Federation(app, strategy=FedAvg(fraction_evaluate=0.0), dataset=dataset,
                             initial_arrays=[np.zeros(1)], seed=0, display="none")

    def skewed() -> FederatedDataset:
        return split(DirichletPartitioner(6, "label", alpha=0.1, min_partition_size=5, seed=0))

    compared = fl.compare(fed(split(IidPartitioner(5))), datasets={"IID": split(IidPartitioner(5)),
                                                                   "Dirichlet(0.1)": skewed()}, rounds=2)
    for name, alone in (("Dirichlet(0.1)", fed(skewed())), ("IID", fed(split(IidPartitioner(5))))):
        a, b = compared[name], alone.run(rounds=2)
        assert a.arrays == b.arrays and a.train_metrics_clientapp == b.train_metrics_clientapp
        # The same, but for the in-process registry name of each dataset object in the config.
        assert _without_dataset_name(a) == _without_dataset_name(b)
    clients = compared.history.to_pandas("clients")
    assert clients.groupby("federation")["node_id"].nunique().to_dict() == {"IID": 5, "Dirichlet(0.1)": 6}


def _without_dataset_name(result: fl.Result) -> dict[str, Any]:
    from fedlab.datasets.node import DATASET_KEY

    assert result.history is not None
    stored: dict[str, Any] = json.loads(result.history.to_json(include_timings=False))
    assert stored["run"]["config"].pop(DATASET_KEY).startswith("fds-")
    return stored
