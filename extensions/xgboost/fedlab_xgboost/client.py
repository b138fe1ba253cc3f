"""A ClientApp that boosts and evaluates an XGBoost model on each node's DMatrix partition."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from fedlab import ClientApp, Context, Message, MetricRecord, RecordDict
from fedlab_xgboost.model import (
    booster_from_bytes,
    booster_to_bytes,
    model_from_record,
    model_to_record,
)

if TYPE_CHECKING:
    import xgboost as xgb

__all__ = ["DEFAULT_PARAMS", "binary_metrics", "xgb_client_app"]

#: Parameters for binary classification. ``base_score`` is fixed so that models boosted
#: from scratch on different clients share it and their trees can be merged.
DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary:logistic",
    "base_score": 0.5,
    "eta": 0.1,
    "max_depth": 4,
    "tree_method": "hist",
    "nthread": 1,
    "seed": 0,
}

#: ``load_data(ctx)`` returns this node's ``(train, test)`` DMatrix pair.
DataLoader = Callable[[Context], "tuple[xgb.DMatrix, xgb.DMatrix]"]


def binary_metrics(booster: xgb.Booster, data: xgb.DMatrix) -> dict[str, float]:
    """Return ``auc``, ``accuracy`` (threshold 0.5) and ``logloss`` of ``booster`` on ``data``."""
    prob = np.asarray(booster.predict(data), dtype=np.float64)
    label = np.asarray(data.get_label(), dtype=np.float64)
    positives = int(label.sum())
    negatives = len(label) - positives
    if positives and negatives:
        _, tie, count = np.unique(prob, return_inverse=True, return_counts=True)
        first = np.zeros(len(prob))
        first[np.argsort(prob, kind="stable")] = np.arange(1, len(prob) + 1)
        ranks = (np.bincount(tie, first) / count)[tie]  # tied scores share their mean rank
        auc = float((ranks[label == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))
    else:
        auc = float("nan")
    clipped = np.clip(prob, 1e-7, 1 - 1e-7)
    logloss = float(-np.mean(label * np.log(clipped) + (1 - label) * np.log(1 - clipped)))
    return {"auc": auc, "accuracy": float(np.mean((prob > 0.5) == (label == 1))), "logloss": logloss}


def xgb_client_app(
    load_data: DataLoader,
    params: Mapping[str, Any] | None = None,
    local_rounds: int = 1,
    arrayrecord_key: str = "arrays",
) -> ClientApp:
    """Build a ClientApp that boosts ``local_rounds`` trees per round and evaluates the model.

    Parameters
    ----------
    load_data
        ``load_data(ctx)`` returns this node's ``(train, test)`` DMatrix pair, for instance
        the rows of partition ``ctx.node_config["partition-id"]``.
    params
        XGBoost training parameters (default :data:`DEFAULT_PARAMS`); ``config["params"]``
        keys are not read: the model's parameters are the client's.
    local_rounds
        Boosting rounds each training call adds (``config["local-rounds"]`` overrides it).
    arrayrecord_key
        The name of the ArrayRecord with the model bytes (the strategy's ``arrayrecord_key``).

    Notes
    -----
    Train replies hold the whole model (the global one with the new trees after it) and
    ``num-examples``, ``train-logloss``; evaluate replies ``auc``, ``accuracy``, ``logloss``
    and ``num-examples`` on the test DMatrix. To run it with ``deploy()``, bind the app at
    the top level of an importable module (``app = xgb_client_app(load)``, with ``load``
    defined in that module): the bundle then ships that module by import path.
    """
    import xgboost as xgb

    settings = dict(DEFAULT_PARAMS if params is None else params)
    app = ClientApp()

    def train(msg: Message, ctx: Context) -> Message:
        dtrain, _ = load_data(ctx)
        model = model_from_record(msg.content.array_record(arrayrecord_key))
        config = msg.content.config_records.get("config")
        rounds = local_rounds
        if config is not None and isinstance(config.get("local-rounds"), int):
            rounds = int(config["local-rounds"])  # type: ignore[arg-type]
        start = booster_from_bytes(model, settings) if model else None
        booster = xgb.train(settings, dtrain, num_boost_round=rounds, xgb_model=start)
        fitted = binary_metrics(booster, dtrain)
        metrics = MetricRecord({"num-examples": dtrain.num_row(), "train-logloss": fitted["logloss"]})
        model_record = model_to_record(booster_to_bytes(booster))
        return msg.reply(RecordDict({arrayrecord_key: model_record, "metrics": metrics}))

    def evaluate(msg: Message, ctx: Context) -> Message:
        _, dtest = load_data(ctx)
        model = model_from_record(msg.content.array_record(arrayrecord_key))
        result: dict[str, Any] = {"num-examples": dtest.num_row()}
        if model:
            result.update(binary_metrics(booster_from_bytes(model, settings), dtest))
        return msg.reply(RecordDict({"metrics": MetricRecord(result)}))

    # The handlers count as the loader's module's, so an app bound at its top level is
    # bundled by import path (see Notes).
    for handler in (train, evaluate):
        handler.__module__ = getattr(load_data, "__module__", None) or __name__
    app.train()(train)
    app.evaluate()(evaluate)
    return app
