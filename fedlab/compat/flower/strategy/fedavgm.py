"""Flower's ``FedAvgM`` and ``FedProx``: FedAvg with server momentum, FedAvg sending ``proximal-mu``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from fedlab.compat.flower.records import Array, ArrayRecord, as_flower_arrays
from fedlab.compat.flower.strategy.aggregation import aggregate_arrayrecords
from fedlab.compat.flower.strategy.fedavg import FEDAVG_ARGUMENTS, FedAvg
from fedlab.message import Message
from fedlab.records import ArrayRecord as _ArrayRecord
from fedlab.records import ConfigRecord
from fedlab.server import Grid

__all__ = ["FedAvgM", "FedProx"]


class FedAvgM(FedAvg):
    """Flower's FedAvgM: ``x ← x − server_learning_rate · m``, ``m ← μ·m + (x − FedAvg)``.

    As in Flower: the momentum starts as the first pseudo-gradient itself, ``x`` is the
    strategy's own last output (the initial arrays before round 1), and with
    ``server_momentum=0`` and ``server_learning_rate=1`` it is exactly FedAvg.
    """

    def __init__(
        self,
        *args: Any,
        server_learning_rate: float = 1.0,
        server_momentum: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.server_learning_rate = server_learning_rate
        self.server_momentum = server_momentum
        self.server_opt = server_momentum != 0.0 or server_learning_rate != 1.0
        self.global_arrays: ArrayRecord | None = None
        self.momentum_vector: list[npt.NDArray[Any]] | None = None

    @classmethod
    def _arguments(cls) -> Sequence[str]:
        return (*FEDAVG_ARGUMENTS, "server_learning_rate", "server_momentum")

    def reset(self) -> None:
        """Forget the momentum and global arrays of an earlier run."""
        super().reset()
        self.global_arrays = None
        self.momentum_vector = None

    def configure_train(
        self, server_round: int, arrays: _ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """As FedAvg; remembers the initial arrays as the first global model."""
        if self.global_arrays is None:
            self.global_arrays = as_flower_arrays(arrays)
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_arrays(self, server_round: int, replies: Sequence[Message]) -> ArrayRecord | None:
        """FedAvg of the replies, then the momentum step from the last global arrays."""
        averaged = aggregate_arrayrecords([r.content for r in replies], self.weighted_by_key)
        if not self.server_opt or self.global_arrays is None:
            return averaged
        old = self.global_arrays.to_numpy_ndarrays()
        gradient = [o - new for new, o in zip(averaged.to_numpy_ndarrays(), old, strict=True)]
        if self.server_momentum > 0.0:
            if self.momentum_vector is None:
                self.momentum_vector = gradient
            else:
                self.momentum_vector = [
                    self.server_momentum * m + g
                    for m, g in zip(self.momentum_vector, gradient, strict=True)
                ]
            gradient = self.momentum_vector
        updated = [
            Array(np.asarray(o - self.server_learning_rate * g))
            for o, g in zip(old, gradient, strict=True)
        ]
        self.global_arrays = ArrayRecord(dict(zip(list(averaged), updated, strict=True)))
        return self.global_arrays


class FedProx(FedAvg):
    """Flower's FedProx: FedAvg that sends ``proximal-mu`` in every training config.

    The client adds the proximal term ``μ/2·‖w − w_global‖²`` to its loss itself.
    """

    def __init__(self, *args: Any, proximal_mu: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.proximal_mu = proximal_mu

    @classmethod
    def _arguments(cls) -> Sequence[str]:
        return (*FEDAVG_ARGUMENTS, "proximal_mu")

    def configure_train(
        self, server_round: int, arrays: _ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """As FedAvg, with ``config["proximal-mu"]`` set."""
        config = ConfigRecord(config)
        config["proximal-mu"] = self.proximal_mu
        return super().configure_train(server_round, arrays, config, grid)
