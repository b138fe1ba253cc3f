"""SuperNodes pass their device to the ClientApp: ``--device``, ``$FEDLAB_DEVICE``, ``deploy(local=N)``."""

from __future__ import annotations

import numpy as np
import pytest

import fedlab as fl
from fedlab.deploy.local._cluster import LocalCluster
from fedlab.events import ClientReplied
from fedlab.strategy import FedAvg


def reporting_app() -> fl.ClientApp:
    # Defined in a function, so the bundle captures it by value (as from a notebook).
    app = fl.ClientApp()

    @app.train()
    def train(msg: fl.Message, ctx: fl.Context) -> fl.Message:
        device = fl.client_device(ctx)
        metrics = {"num-examples": 1, "device": -1 if device == "cpu" else int(device.split(":")[1])}
        return msg.reply(fl.RecordDict({"arrays": msg.content["arrays"],
                                        "metrics": fl.MetricRecord(metrics)}))  # fmt: skip

    return app


def make_fed(nodes: int, devices: object = "auto") -> tuple[fl.Federation, list[ClientReplied]]:
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=nodes,
                      min_available_nodes=nodes)  # fmt: skip
    fed = fl.Federation(reporting_app(), strategy=strategy, num_clients=nodes, initial_arrays=[np.zeros(2)],
                        display="none", devices=devices)  # type: ignore[arg-type]  # fmt: skip
    replies: list[ClientReplied] = []
    fed.subscribe(lambda e: replies.append(e) if isinstance(e, ClientReplied) else None)
    return fed, replies


def test_deploy_local_spreads_the_federations_devices_over_its_supernodes() -> None:
    fed, replies = make_fed(3, ["cuda:1", "cuda:0"])
    fed.deploy(local=3, rounds=1)
    assert [r.error for r in replies] == [None] * 3
    assert {r.partition_id: r.metrics["device"] for r in replies} == {0: 1, 1: 0, 2: 1}


def test_a_supernode_gives_its_device_flag_or_fedlab_device_to_the_clientapp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FEDLAB_DEVICE", "cuda:5")  # the nodes inherit it
    configs = ["partition-id=0 num-partitions=2", "partition-id=1 num-partitions=2 device=cuda:2"]
    with LocalCluster(2, configs, insecure=True) as cluster:
        assert cluster.addresses is not None
        fed, replies = make_fed(2)
        fed.deploy(cluster.addresses.control, rounds=1, insecure=True)
    # $FEDLAB_DEVICE for the first node; a device in --node-config wins over it.
    assert {r.partition_id: r.metrics["device"] for r in replies} == {0: 5, 1: 2}
    cluster2 = LocalCluster(1, ["partition-id=0 num-partitions=1"], insecure=True)
    cluster2.supernode_args = ["--insecure-allow-unsigned", "--device", "cuda:3"]
    with cluster2:
        assert cluster2.addresses is not None
        fed, replies = make_fed(1)
        fed.deploy(cluster2.addresses.control, rounds=1, insecure=True)
    assert [r.metrics["device"] for r in replies] == [3]
