"""Flower's robust aggregation: ``FedMedian``, ``FedTrimmedAvg``, ``Krum``, ``MultiKrum``, ``Bulyan``.

As Flower 1.42 computes them (fedlab's :mod:`fedlab.strategy.krum` and
:mod:`fedlab.strategy.bulyan` follow the papers instead):

- FedMedian: the unweighted coordinate-wise median of all replies.
- FedTrimmedAvg: per coordinate, cut ``int(beta·n)`` values at each end, average the rest.
- Krum/MultiKrum: each reply's score is the sum of its squared distances (between whole
  returned models, as ``‖x‖²+‖y‖²−2x·y``) to its ``max(1, n−f−2)`` nearest others; the
  ``num_nodes_to_select`` lowest scores are chosen once, and their **num-examples-weighted**
  mean is the new model (Krum: one).
- Bulyan: needs ``4f+3`` replies (fewer: the round keeps the old model); picks
  ``θ = n−2f`` with the one-shot MultiKrum selection above, then per coordinate averages
  the ``θ−2f`` values closest to the median of those θ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from fedlab.compat.flower.records import Array, ArrayRecord, MetricRecord
from fedlab.compat.flower.strategy.aggregation import (
    aggregate_arrayrecords,
    check_replies,
    reply_arrays,
)
from fedlab.compat.flower.strategy.fedavg import FEDAVG_ARGUMENTS, FedAvg
from fedlab.errors import AggregationError, StrategyError
from fedlab.message import Message
from fedlab.records import Array as _Array
from fedlab.records import RecordDict

__all__ = [
    "Bulyan",
    "FedMedian",
    "FedTrimmedAvg",
    "Krum",
    "MultiKrum",
    "SelectionRule",
    "select_multikrum",
    "trim_mean",
]

#: Bulyan's selection: ``rule(contents, num_malicious_nodes, num_to_select) -> contents``.
SelectionRule = Callable[[list[RecordDict], int, int], list[RecordDict]]


def _stacked(contents: Sequence[RecordDict]) -> tuple[list[str], list[npt.NDArray[Any]]]:
    """The array names, and for each name the replies' arrays stacked along a new axis 0."""
    records = [reply_arrays(c) for c in contents]
    names = list(records[0])
    # np.stack copies, so read-only views of the replies' arrays are enough.
    return names, [np.stack([_Array.numpy(r[name]) for r in records]) for name in names]


class FedMedian(FedAvg):
    """Flower's FedMedian: the unweighted coordinate-wise median of the replies."""

    def aggregate_arrays(self, server_round: int, replies: Sequence[Message]) -> ArrayRecord | None:
        """The median of every coordinate over the replies."""
        names, layers = _stacked([r.content for r in replies])
        return ArrayRecord(
            {n: Array(np.asarray(np.median(s, axis=0))) for n, s in zip(names, layers, strict=True)}
        )


def trim_mean(array: npt.NDArray[Any], cut_fraction: float) -> npt.NDArray[Any]:
    """The mean over axis 0 after cutting ``int(cut_fraction·n)`` values at each end.

    Examples
    --------
    >>> trim_mean(np.array([[0.0], [1.0], [2.0], [100.0]]), 0.25).tolist()
    [1.5]
    """
    if not 0.0 <= cut_fraction < 0.5:
        raise AggregationError(f"beta must be in [0, 0.5), got {cut_fraction}.")
    n = array.shape[0]
    low = int(cut_fraction * n)
    high = n - low
    ordered = np.partition(array, (low, high - 1), axis=0)
    mean: npt.NDArray[Any] = np.mean(ordered[low:high], axis=0)
    return mean


class FedTrimmedAvg(FedAvg):
    """Flower's FedTrimmedAvg: cut ``int(beta·n)`` values at each end, average the rest."""

    def __init__(self, *args: Any, beta: float = 0.2, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not 0.0 <= beta < 0.5:
            raise StrategyError(
                f"beta must be in [0, 0.5), got {beta!r}; it is the fraction cut at each end."
            )
        self.beta = beta

    @classmethod
    def _arguments(cls) -> Sequence[str]:
        return (*FEDAVG_ARGUMENTS, "beta")

    def aggregate_arrays(self, server_round: int, replies: Sequence[Message]) -> ArrayRecord | None:
        """The trimmed mean of every coordinate over the replies."""
        names, layers = _stacked([r.content for r in replies])
        return ArrayRecord(
            {
                n: Array(np.asarray(trim_mean(s, self.beta)))
                for n, s in zip(names, layers, strict=True)
            }
        )


def select_multikrum(
    contents: list[RecordDict], num_malicious_nodes: int, num_nodes_to_select: int
) -> list[RecordDict]:
    """The ``num_nodes_to_select`` contents with the lowest Krum scores, chosen at once."""
    flat = np.stack(
        [np.concatenate(reply_arrays(c).to_numpy_ndarrays(), axis=None).ravel() for c in contents]
    )
    norms = np.square(flat).sum(axis=1)
    distances = norms[:, None] + norms[None, :] - 2 * flat @ flat.T
    closest = max(1, len(contents) - num_malicious_nodes - 2)
    scores = [np.sum(row[np.argsort(row)[1 : closest + 1]]) for row in distances]
    return [contents[i] for i in np.argsort(scores)[:num_nodes_to_select]]


class MultiKrum(FedAvg):
    """Flower's MultiKrum: the num-examples-weighted mean of the best-scored replies."""

    def __init__(
        self, *args: Any, num_malicious_nodes: int = 0, num_nodes_to_select: int = 1, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.num_malicious_nodes = num_malicious_nodes
        self.num_nodes_to_select = num_nodes_to_select

    @classmethod
    def _arguments(cls) -> Sequence[str]:
        return (*FEDAVG_ARGUMENTS, "num_malicious_nodes", "num_nodes_to_select")

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Select by score, then average arrays and metrics of the selected replies only."""
        ok = [r for r in replies if not r.has_error()]
        if not ok:
            return None, None
        check_replies(ok, self.weighted_by_key, with_arrays=True)
        chosen = select_multikrum(
            [r.content for r in ok], self.num_malicious_nodes, self.num_nodes_to_select
        )
        arrays = aggregate_arrayrecords(chosen, self.weighted_by_key)
        return arrays, self.train_metrics_aggr_fn(chosen, self.weighted_by_key)


class Krum(MultiKrum):
    """Flower's Krum: the one reply with the lowest Krum score."""

    def __init__(self, *args: Any, num_malicious_nodes: int = 0, **kwargs: Any) -> None:
        super().__init__(
            *args, num_malicious_nodes=num_malicious_nodes, num_nodes_to_select=1, **kwargs
        )

    @classmethod
    def _arguments(cls) -> Sequence[str]:
        return (*FEDAVG_ARGUMENTS, "num_malicious_nodes")


class Bulyan(FedAvg):
    """Flower's Bulyan: one-shot MultiKrum selection of ``n−2f``, then a trimmed median."""

    def __init__(
        self,
        *args: Any,
        num_malicious_nodes: int = 0,
        selection_rule: SelectionRule | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.num_malicious_nodes = num_malicious_nodes
        self.selection_rule: SelectionRule = selection_rule or select_multikrum

    @classmethod
    def _arguments(cls) -> Sequence[str]:
        return (*FEDAVG_ARGUMENTS, "num_malicious_nodes", "selection_rule")

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Keep the old model with fewer than ``4f+3`` replies; else select, then trim."""
        ok = [r for r in replies if not r.has_error()]
        f = self.num_malicious_nodes
        if len(ok) < 4 * f + 3:
            self.report(server_round, skipped=f"{len(ok)} replies, Bulyan needs {4 * f + 3}")
            return None, None
        check_replies(ok, self.weighted_by_key, with_arrays=True)
        theta = len(ok) - 2 * f
        beta = theta - 2 * f
        chosen = self.selection_rule([r.content for r in ok], f, theta)
        names, layers = _stacked(chosen)
        out = {}
        for name, stack in zip(names, layers, strict=True):
            median = np.median(stack, axis=0)
            index = np.argpartition(np.abs(stack - median), beta - 1, axis=0)[:beta]
            out[name] = Array(np.asarray(np.mean(np.take_along_axis(stack, index, axis=0), axis=0)))
        return ArrayRecord(out), self.train_metrics_aggr_fn(chosen, self.weighted_by_key)
