"""`FedXgbBagging` and `FedXgbCyclic`: federated gradient-boosted trees.

Both exchange the model as XGBoost JSON bytes (:mod:`fedlab_xgboost.model`) and evaluate
like :class:`~fedlab.strategy.FedAvg`: clients report metrics with ``num-examples``, and
the server averages them weighted by examples.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from typing import Any

from fedlab import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from fedlab.server import Grid
from fedlab.strategy import FedAvg
from fedlab_xgboost.errors import XGBoostModelError
from fedlab_xgboost.model import merge_models, model_from_record, model_to_record, num_trees

__all__ = ["FedXgbBagging", "FedXgbCyclic"]


def _reply_model(reply: Message) -> bytes:
    records = reply.content.array_records
    if len(records) != 1:
        raise XGBoostModelError(f"A training reply must hold one ArrayRecord, it holds {len(records)}.")
    return model_from_record(next(iter(records.values())))


def _metrics(reply: Message) -> RecordDict:
    return RecordDict({k: v for k, v in reply.content.items() if not isinstance(v, ArrayRecord)})


class _XgbStrategy(FedAvg):
    """What both XGBoost strategies share: reply checks and reading the global model."""

    def check_train_reply(self, instruction: Message, reply: Message) -> str | None:
        """Refuse a reply that is not the sent model with trees added, or has no weight."""
        try:
            returned = _reply_model(reply)
            sent = model_from_record(instruction.content.array_record(self.arrayrecord_key))
            merge_models(sent, [returned])
        except XGBoostModelError as exc:
            return str(exc)
        if num_trees(returned) <= num_trees(sent):
            return "the reply added no trees to the model it was sent"
        metrics = reply.content.metric_records
        weight = next((m.get(self.weighted_by_key) for m in metrics.values()), None)
        if not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
            return f"the reply reports no positive {self.weighted_by_key!r}"
        return None

    def _train_metrics(self, ok: Sequence[Message]) -> MetricRecord:
        return self.train_metrics_aggr_fn([_metrics(r) for r in ok], self.weighted_by_key)


class FedXgbBagging(_XgbStrategy):
    """Bagging of boosted trees: every sampled client adds trees, the server keeps them all.

    Each round, the sampled clients each boost a few new trees on their own data from the
    current global model; the new global model is the old one followed by every client's
    new trees (:func:`~fedlab_xgboost.merge_models`, ordered by the SHA-256 of each
    reply's model bytes, so that the result does not depend on reply order or node ids). Its margin is the old
    margin plus the sum of the clients' added margins, so keep the clients' learning rate
    small enough for that sum. Takes :class:`~fedlab.strategy.FedAvg`'s arguments
    (``fraction_train``, ``min_train_nodes``, ``fraction_evaluate``, ...).

    Examples
    --------
    >>> FedXgbBagging(fraction_train=1.0, min_train_nodes=5).min_train_nodes
    5
    """

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Append the new trees of every successful reply to the global model."""
        ok = [r for r in replies if not r.has_error()]
        if not ok or len(ok) < self.min_train_nodes:
            return None, None
        base = model_from_record(self.current_arrays) if self.current_arrays is not None else b""
        # In the order of their bytes' digests: the result does not depend on which node
        # answered first or on the nodes' ids (a simulation and a deployment agree).
        models = sorted((_reply_model(r) for r in ok), key=lambda m: hashlib.sha256(m).digest())
        merged = merge_models(base, models)
        self.report(server_round, aggregated=len(ok), trees=num_trees(merged))
        return model_to_record(merged), self._train_metrics(ok)


class FedXgbCyclic(_XgbStrategy):
    """Cyclic boosting: the model visits one client per round, in turn, each adding trees.

    Round ``r`` trains on the ``(r - 1) % n``-th of the ``n`` eligible nodes (sorted by id),
    and its reply becomes the global model. Evaluation follows ``fraction_evaluate`` as in
    :class:`~fedlab.strategy.FedAvg`.

    Examples
    --------
    >>> FedXgbCyclic(min_available_nodes=5).min_train_nodes
    1
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_train_nodes", 1)
        super().__init__(**kwargs)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Send the model to the next node in turn."""
        self._current_arrays = arrays
        available = grid.wait_for_nodes(max(self.min_available_nodes, 1), 60.0)
        nodes = self.eligible_nodes(grid, available)
        if not nodes:
            raise XGBoostModelError("FedXgbCyclic found no eligible node to train on.")
        node = nodes[(server_round - 1) % len(nodes)]
        content = RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: config})
        return [grid.create_message(content, MessageType.TRAIN, node, group_id=str(server_round))]

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The one successful reply's model becomes the global model."""
        ok = [r for r in replies if not r.has_error()]
        if not ok:
            return None, None
        model = _reply_model(ok[-1])
        self.report(server_round, aggregated=1, trees=num_trees(model))
        return model_to_record(model), self._train_metrics(ok)
