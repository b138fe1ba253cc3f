"""XGBoost model bytes, tree merging, and bagging / cyclic federations on breast-cancer."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xgboost as xgb
from fedlab_xgboost import (
    DEFAULT_PARAMS,
    FedXgbBagging,
    FedXgbCyclic,
    XGBoostModelError,
    booster_from_bytes,
    booster_to_bytes,
    empty_model,
    merge_models,
    model_from_record,
    model_to_record,
    num_trees,
)
from xgb_breast_cancer_app import NUM_CLIENTS, SEED, app, held_out_accuracy, split

from fedlab import Federation


def boosters() -> tuple[xgb.DMatrix, xgb.Booster, xgb.Booster]:
    x_train, x_test, y_train, _ = split()
    half = len(y_train) // 2
    first = xgb.train(DEFAULT_PARAMS, xgb.DMatrix(x_train[:half], y_train[:half]), 4)
    second = xgb.train(DEFAULT_PARAMS, xgb.DMatrix(x_train[half:], y_train[half:]), 3)
    return xgb.DMatrix(x_test), first, second


def test_model_bytes_round_trip_exactly_through_an_array_record() -> None:
    data, booster, _ = boosters()
    model = booster_to_bytes(booster)
    record = model_to_record(model)
    assert record["model"].numpy().dtype == np.uint8
    assert model_from_record(record) == model
    loaded = booster_from_bytes(model_from_record(record))
    assert booster_to_bytes(loaded) == model
    assert np.array_equal(loaded.predict(data), booster.predict(data))
    assert model_from_record(empty_model()) == b""


def test_merged_trees_predict_exactly_as_each_booster_and_margins_add_up() -> None:
    data, first, second = boosters()
    merged = booster_from_bytes(merge_models(b"", [booster_to_bytes(first), booster_to_bytes(second)]))
    assert merged.num_boosted_rounds() == 7
    # Each client's trees, sliced out of the ensemble, predict bit for bit as that client's model.
    m1, m2 = first.predict(data, output_margin=True), second.predict(data, output_margin=True)
    assert np.array_equal(merged.predict(data, output_margin=True, iteration_range=(0, 4)), m1)
    assert np.array_equal(merged.predict(data, output_margin=True, iteration_range=(4, 7)), m2)
    # With base_score 0.5 (margin 0) the ensemble's margin is the sum of the two margins.
    np.testing.assert_allclose(merged.predict(data, output_margin=True), m1 + m2, rtol=0, atol=1e-5)
    # Continuing the merged model keeps its trees and adds new ones after them.
    x_train, _, y_train, _ = split()
    more = xgb.train(DEFAULT_PARAMS, xgb.DMatrix(x_train, y_train), 2, xgb_model=merged)
    assert num_trees(merge_models(booster_to_bytes(merged), [booster_to_bytes(more)])) == 9


def test_a_model_not_boosted_from_the_global_one_is_refused() -> None:
    _, first, second = boosters()
    with pytest.raises(XGBoostModelError, match="not boosted from the global model"):
        merge_models(booster_to_bytes(first), [booster_to_bytes(second)])


def federation(strategy: FedXgbBagging | FedXgbCyclic) -> Federation:
    return Federation(app, strategy=strategy, num_clients=NUM_CLIENTS, initial_arrays=empty_model(), seed=SEED, display="none")


def test_bagging_over_five_clients_reaches_093_held_out_accuracy() -> None:
    strategy = FedXgbBagging(min_train_nodes=NUM_CLIENTS, min_evaluate_nodes=NUM_CLIENTS, min_available_nodes=NUM_CLIENTS)
    result = federation(strategy).run(rounds=5)
    model = model_from_record(result.arrays)
    assert num_trees(model) == 5 * NUM_CLIENTS * 2  # rounds x clients x local rounds
    assert held_out_accuracy(model) >= 0.93
    final = result.evaluate_metrics_clientapp[5]
    assert final["num-examples"] == len(split()[3]) and final["accuracy"] >= 0.93 and final["auc"] > 0.97


def test_cyclic_over_five_clients_visits_each_in_turn_and_reaches_093() -> None:
    result = federation(FedXgbCyclic(min_evaluate_nodes=NUM_CLIENTS, min_available_nodes=NUM_CLIENTS)).run(rounds=10)
    model = model_from_record(result.arrays)
    assert num_trees(model) == 10 * 2
    assert held_out_accuracy(model) >= 0.93
    assert result.train_metrics_clientapp[1]["num-examples"] in (85, 86)  # one client's fifth


def test_import_fedlab_does_not_import_xgboost() -> None:
    code = "import sys, fedlab, fedlab.strategy; print('xgboost' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
