"""What the Byzantine-robust strategies share: a declared f, a bound on n, and a refusal."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from fedlab.errors import AggregationError, StrategyError
from fedlab.message import Message
from fedlab.records import ArrayRecord, ConfigRecord
from fedlab.server.grid import Grid
from fedlab.strategy._arrays import Float64Arrays, from_float64, stack_replies
from fedlab.strategy.fedavg import FedAvg
from fedlab.validate import check_int

__all__ = ["RobustFedAvg"]


class RobustFedAvg(FedAvg):
    """Base of the robust rules: each holds only while n, the replies, satisfies a bound in f.

    Subclasses give the bound (:meth:`bound_holds`, :attr:`bound`) and combine stacked
    float64 arrays (:meth:`combine`). The bound is checked twice: on the number of nodes
    sampled, before anyone trains, and on the number of successful replies, before
    aggregating. Outside it the strategy raises :class:`~fedlab.errors.AggregationError`
    and never aggregates: its guarantee would not hold.
    """

    #: The bound, as written in the paper, e.g. ``"n > 2f + 2"``.
    bound: str = ""
    #: The rules combine the arrays without weights (``num-examples`` weighs the metrics).
    weighs_arrays = False

    def __init__(self, *, num_malicious_nodes: int = 0, **fedavg: Any) -> None:
        super().__init__(**fedavg)
        self.num_malicious_nodes = check_int(
            "num_malicious_nodes", num_malicious_nodes, StrategyError
        )

    @abstractmethod
    def bound_holds(self, n: int) -> bool:
        """Whether the rule's guarantee holds with ``n`` replies and the declared f."""

    @abstractmethod
    def combine(
        self, server_round: int, node_ids: list[int], stacks: Float64Arrays
    ) -> dict[str, npt.NDArray[np.float64]]:
        """Combine ``name -> (n, *shape)`` stacks into one model (float64)."""

    def min_replies(self) -> int:
        """The least n for which :meth:`bound_holds` (searched upwards from 1)."""
        # Every rule here holds from some n on (their bounds grow linearly in f), so this ends;
        # the cap only guards a subclass whose bound never holds.
        for n in range(1, 1_000_000):
            if self.bound_holds(n):
                return n
        raise StrategyError(f"{type(self).__name__}'s bound {self.bound!r} holds for no number of replies.")

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Sample as FedAvg does, but refuse a sample too small for the bound."""
        messages = list(super().configure_train(server_round, arrays, config, grid))
        self._check_bound(len(messages), "nodes were sampled")
        return messages

    def aggregate_arrays(self, server_round: int, replies: Sequence[Message]) -> ArrayRecord:
        """Check the bound on the successful replies, then :meth:`combine` them."""
        self._check_bound(len(replies), "replies succeeded")
        node_ids, like, stacks = stack_replies(replies)
        return from_float64(self.combine(server_round, node_ids, stacks), like)

    def _check_bound(self, n: int, what: str) -> None:
        if self.bound_holds(n):
            return
        f = self.num_malicious_nodes
        need = self.min_replies()
        raise AggregationError(
            f"{type(self).__name__} needs {self.bound} replies (f={f} declared malicious nodes"
            f"{self._bound_detail()}), i.e. n >= {need}, but only n={n} {what} this round. "
            f"Sample at least {need} nodes (min_train_nodes={need} and enough clients) or "
            "declare fewer malicious nodes; aggregating outside the bound gives no protection."
        )

    def _bound_detail(self) -> str:
        return ""
