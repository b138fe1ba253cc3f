"""Flower's ``Strategy`` base: fedlab's round loop behind Flower's ``start`` signature."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from fedlab.compat.flower.grid import as_flower_grid
from fedlab.compat.flower.records import as_flower_arrays
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord
from fedlab.server import Grid, Result
from fedlab.strategy import Strategy as _Strategy

__all__ = ["Strategy"]

#: Flower's server-side evaluation: ``evaluate_fn(server_round, arrays)``.
FlowerEvaluateFn = Callable[[int, ArrayRecord], "MetricRecord | None"]


class Strategy(_Strategy):
    """Base of Flower's strategies: the four hooks and Flower's :meth:`start`.

    The rounds run in fedlab's loop, so a run shows on the dashboard and in History;
    ``server-round`` starts at 1 and ``evaluate_fn`` is called for round 0 first, as in
    Flower. Replies, arrays passed to ``evaluate_fn`` and ``Result.arrays`` are
    ``flwr.app`` types.
    """

    def start(  # type: ignore[override]
        self,
        grid: Grid,
        initial_arrays: ArrayRecord,
        num_rounds: int = 3,
        timeout: float = 3600,
        train_config: ConfigRecord | None = None,
        evaluate_config: ConfigRecord | None = None,
        evaluate_fn: FlowerEvaluateFn | None = None,
        **options: Any,
    ) -> Result:
        """Run ``num_rounds`` rounds on ``grid`` from ``initial_arrays``; return the Result.

        ``options`` are fedlab's extra arguments of :meth:`fedlab.strategy.Strategy.start`
        (``seed``, ``on_round_end``...).
        """
        wrapped: Callable[[int, ArrayRecord], Any] | None = None
        if evaluate_fn is not None:
            user_fn = evaluate_fn

            def wrapped(server_round: int, arrays: ArrayRecord) -> Any:
                return user_fn(server_round, as_flower_arrays(arrays))

        result = super().start(
            as_flower_grid(grid),
            as_flower_arrays(initial_arrays),
            num_rounds,
            timeout=timeout,
            train_config=train_config,
            evaluate_config=evaluate_config,
            evaluate_fn=wrapped,
            **options,
        )
        return dataclasses.replace(result, arrays=as_flower_arrays(result.arrays))
