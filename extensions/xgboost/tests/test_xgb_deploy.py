"""FedXgbBagging through deploy(local=3): SuperNode processes over TLS, the simulation's result."""

from __future__ import annotations

import pytest
from fedlab_xgboost import FedXgbBagging, empty_model, model_from_record, num_trees
from xgb_breast_cancer_app import SEED, app, held_out_accuracy

from fedlab import Federation


def federation() -> Federation:
    strategy = FedXgbBagging(min_train_nodes=3, min_evaluate_nodes=3, min_available_nodes=3)
    return Federation(app, strategy=strategy, num_clients=3, initial_arrays=empty_model(), seed=SEED, display="none")


def test_bagging_deployed_on_three_supernodes_ends_with_the_simulated_model() -> None:
    simulated = federation().run(rounds=3)
    deployed = federation().deploy(local=3, rounds=3)
    model = model_from_record(deployed.arrays)
    assert num_trees(model) == 3 * 3 * 2
    assert model == model_from_record(simulated.arrays)  # the same trees, byte for byte
    # The federated metrics agree; their weighted mean is summed in reply order, which
    # follows the nodes' ids, so the last bit of a float average may differ.
    assert deployed.evaluate_metrics_clientapp.keys() == simulated.evaluate_metrics_clientapp.keys()
    for rnd, metrics in deployed.evaluate_metrics_clientapp.items():
        assert dict(metrics) == pytest.approx(dict(simulated.evaluate_metrics_clientapp[rnd]), rel=1e-12)
    assert held_out_accuracy(model) >= 0.93
