"""A Federation given a FederatedDataset: one client per partition, each loading its own."""

from __future__ import annotations

import numpy as np
import pytest

import fedlab as fl
from fedlab.datasets import FederatedDataset, LinearPartitioner, load_partition
from fedlab.errors import FederationError
from tests.unit.datasets.partition_checks import labelled


def app_reporting_partition_sums() -> fl.ClientApp:
    app = fl.ClientApp()

    @app.train()
    def train(msg: fl.Message, ctx: fl.Context) -> fl.Message:
        rows = load_partition(ctx, split="train")
        total = float(np.sum(rows.with_format("numpy")["x"][:]))
        return msg.reply(
            fl.RecordDict(
                {
                    "arrays": msg.content["arrays"],
                    "metrics": fl.MetricRecord({"num-examples": len(rows), "x-sum": total}),
                }
            )
        )

    return app


def federation(fds: FederatedDataset, **options: object) -> fl.Federation:
    return fl.Federation(
        app_reporting_partition_sums(),
        fl.strategy.FedAvg(fraction_evaluate=0.0),
        dataset=fds,
        initial_arrays=[np.zeros(1)],
        seed=0,
        display="none",
        **options,  # type: ignore[arg-type]
    )


def test_num_clients_defaults_to_the_partitions_and_each_client_trains_on_its_own() -> None:
    fds = FederatedDataset(labelled(100), partitioners={"train": LinearPartitioner(4, seed=1)})
    fed = federation(fds)
    assert fed.num_clients == 4
    result = fed.run(rounds=1)
    assert result.history is not None
    per_client = result.history.to_pandas(kind="clients")
    sizes = dict(zip(per_client["partition_id"], per_client["metric.num-examples"], strict=True))
    assert sizes == {0: 10, 1: 20, 2: 30, 3: 40}
    # Together the clients saw every row exactly once: the sum of 0..99.
    assert per_client["metric.x-sum"].sum() == sum(range(100))


def test_more_clients_than_partitions_is_refused_and_without_a_dataset_the_default_stays_10() -> (
    None
):
    fds = FederatedDataset(labelled(100), partitioners={"train": 4})
    with pytest.raises(FederationError, match="only 4 partitions"):
        federation(fds, num_clients=5)
    plain = fl.Federation(
        app_reporting_partition_sums(),
        fl.strategy.FedAvg(fraction_evaluate=0.0),
        initial_arrays=[np.zeros(1)],
        display="none",
    )
    assert plain.num_clients == 10
