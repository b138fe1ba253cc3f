"""`Result`: what a finished run hands back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fedlab.records import ArrayRecord, MetricRecord

if TYPE_CHECKING:
    from fedlab.history import History

__all__ = ["Result"]


@dataclass(frozen=True)
class Result:
    """The outcome of a run: the final global arrays and the metrics of every round.

    Attributes
    ----------
    arrays
        The global arrays after the last completed round.
    train_metrics_clientapp
        Round → training metrics aggregated from the clients' replies.
    evaluate_metrics_clientapp
        Round → evaluation metrics aggregated from the clients' replies.
    evaluate_metrics_serverapp
        Round → metrics of the server-side ``evaluate_fn`` (round 0 is the initial model).
    rounds_completed
        How many rounds finished (fewer than asked if the run was stopped).
    stopped_early
        True if the run was stopped before its last round.
    history
        The run's :class:`~fedlab.history.History`, when run through a Federation.
    """

    arrays: ArrayRecord
    train_metrics_clientapp: dict[int, MetricRecord] = field(default_factory=dict)
    evaluate_metrics_clientapp: dict[int, MetricRecord] = field(default_factory=dict)
    evaluate_metrics_serverapp: dict[int, MetricRecord] = field(default_factory=dict)
    rounds_completed: int = 0
    stopped_early: bool = False
    history: History | None = None

    def __repr__(self) -> str:
        last = self.rounds_completed
        parts = [f"rounds_completed={last}", f"arrays={self.arrays!r}"]
        for name, table in (
            ("train", self.train_metrics_clientapp),
            ("evaluate", self.evaluate_metrics_clientapp),
            ("server", self.evaluate_metrics_serverapp),
        ):
            if table:
                round_, metrics = max(table.items())
                parts.append(f"{name}[round {round_}]={dict(metrics)}")
        return f"Result({', '.join(parts)})"
