"""A ready-made ClientApp that trains and evaluates a scikit-learn estimator."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy.typing as npt
from sklearn.base import BaseEstimator

from fedlab import ClientApp, Context, Message, MetricRecord, RecordDict
from fedlab_sklearn.params import get_parameters, set_parameters
from fedlab_sklearn.train import evaluate_estimator, fit_from

__all__ = ["LoadPartition", "MakeEstimator", "sklearn_client_app"]

#: Builds a fresh, unfitted estimator with your settings; called once per message.
MakeEstimator = Callable[[], BaseEstimator]
#: ``(partition_id, num_partitions) -> (x, y)``: this client's rows.
LoadPartition = Callable[[int, int], tuple[npt.ArrayLike, npt.ArrayLike]]


def sklearn_client_app(
    make_estimator: MakeEstimator,
    load_partition: LoadPartition,
    *,
    classes: Sequence[Any] | None = None,
    epochs: int = 1,
    load_evaluation: LoadPartition | None = None,
    app: ClientApp | None = None,
) -> ClientApp:
    """A ClientApp whose train and evaluate handlers federate ``make_estimator()``.

    ``train`` loads the received global parameters into a fresh estimator (warm start),
    trains on this client's partition with the agreed ``classes`` (so a client lacking some
    labels still replies with every class's parameters), and replies with the new
    parameters (same names, shapes and dtypes) and its metrics. ``evaluate`` reports loss
    and accuracy (``r2`` for regression) of the received parameters. Each reply carries
    ``num-examples``, so FedAvg weights clients by their data.

    Parameters
    ----------
    make_estimator
        Returns a fresh, unfitted estimator with your settings, e.g.
        ``lambda: LogisticRegression(C=1.0)``.
    load_partition
        ``(partition_id, num_partitions) -> (x, y)``: this client's training rows, read
        from ``ctx.node_config``.
    classes
        The agreed class list of a classifier; ``None`` for ``LinearRegression``.
    epochs
        Local passes per round; a ``"local-epochs"`` entry in the round's config overrides it.
    load_evaluation
        Where ``evaluate`` reads its rows; defaults to ``load_partition``.
    app
        Add the handlers to this ClientApp (e.g. one that also has queries) instead of a new one.

    Examples
    --------
    >>> from sklearn.linear_model import SGDClassifier
    >>> import numpy as np
    >>> app = sklearn_client_app(lambda: SGDClassifier(random_state=0),
    ...                          lambda pid, n: (np.eye(2), np.array([0, 1])), classes=[0, 1])
    """
    client = app if app is not None else ClientApp()
    evaluation = load_evaluation if load_evaluation is not None else load_partition

    def rows(loader: LoadPartition, ctx: Context) -> tuple[npt.ArrayLike, npt.ArrayLike]:
        return loader(int(ctx.node_config["partition-id"]), int(ctx.node_config["num-partitions"]))

    @client.train()
    def train(msg: Message, ctx: Context) -> Message:
        x, y = rows(load_partition, ctx)
        config = msg.content.config_records.get("config")
        local_epochs = epochs
        if config is not None and "local-epochs" in config:
            local_epochs = int(config["local-epochs"])  # type: ignore[arg-type]
        estimator = fit_from(
            make_estimator(), msg.content.array_record("arrays"), x, y, classes=classes, epochs=local_epochs
        )
        metrics = MetricRecord(evaluate_estimator(estimator, x, y))
        return msg.reply(RecordDict({"arrays": get_parameters(estimator), "metrics": metrics}))

    @client.evaluate()
    def evaluate(msg: Message, ctx: Context) -> Message:
        x, y = rows(evaluation, ctx)
        estimator = set_parameters(make_estimator(), msg.content.array_record("arrays"), classes)
        return msg.reply(RecordDict({"metrics": MetricRecord(evaluate_estimator(estimator, x, y))}))

    return client
