"""Flower's central-DP strategy wrappers, as Flower 1.42 runs them.

``DifferentialPrivacyServerSideFixedClipping(strategy, noise_multiplier, clipping_norm,
num_sampled_clients)`` clips each reply's update ``w_k − w`` to L2 norm ``C`` (scaled by
``min(1, C/‖w_k − w‖)``, the whole model as one vector), lets ``strategy`` aggregate, then
adds Gaussian noise of std ``z·C/m`` to every coordinate. The client-side variant sends
``C`` in the train config and expects the clients' ``fixedclipping_mod`` to clip. As in
Flower, a round with any failed reply is skipped (the model stays), and the noise comes
from numpy's global generator. Flower's ``accountant=`` is not supported (fedlab's
:mod:`fedlab.privacy` wrappers account ε around :class:`fedlab.strategy.FedAvg`).

The adaptive variants start from ``initial_clipping_norm``; each round, with ``b`` the
number of replies whose update was clipped (norm above ``C``) plus N(0, σ_b²) noise,
``C ← C·exp(−clip_norm_lr·(b/n − target_clipped_quantile))`` (Flower counts the clipped
replies here, where Andrew et al. count the unclipped ones), and the noise of the
aggregate uses the new ``C`` and the multiplier ``(z⁻² − (2σ_b)⁻²)^(−1/2)``; σ_b defaults to
``num_sampled_clients/20``. Server side, the replies are clipped with the old ``C``; client
side, ``adaptiveclipping_mod`` clips and reports whether the update fitted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from fedlab.compat.flower.error import FlowerCompatError
from fedlab.compat.flower.records import (
    Array,
    ArrayRecord,
    MetricRecord,
    RecordDict,
    as_flower_arrays,
)
from fedlab.compat.flower.strategy.strategy import Strategy
from fedlab.errors import AggregationError, StrategyError
from fedlab.message import Message
from fedlab.mods import CLIPPING_NORM_KEY, NORM_BIT_KEY
from fedlab.records import ArrayRecord as _ArrayRecord
from fedlab.records import ConfigRecord
from fedlab.server import Grid
from fedlab.strategy import Strategy as _Strategy

__all__ = [
    "DifferentialPrivacyClientSideFixedClipping",
    "DifferentialPrivacyServerSideFixedClipping",
]


class DifferentialPrivacyServerSideFixedClipping(Strategy):
    """Flower's server-side fixed-clipping DP wrapper around a Flower-named strategy."""

    clip_on_server = True

    def __init__(
        self,
        strategy: _Strategy,
        noise_multiplier: float,
        clipping_norm: float,
        num_sampled_clients: int,
        *,
        accountant: Any = None,
    ) -> None:
        super().__init__()
        if accountant is not None:
            raise FlowerCompatError(
                f"{type(self).__name__}(accountant=...) is not supported by fedlab's Flower "
                "compatibility layer; fedlab.privacy.DifferentialPrivacyServerSideFixedClipping "
                "around fedlab.strategy.FedAvg reports epsilon."
            )
        if noise_multiplier < 0:
            raise StrategyError(f"noise_multiplier must be >= 0, got {noise_multiplier!r}.")
        if clipping_norm <= 0:
            raise StrategyError(f"clipping_norm must be > 0, got {clipping_norm!r}.")
        if num_sampled_clients <= 0:
            raise StrategyError(f"num_sampled_clients must be > 0, got {num_sampled_clients!r}.")
        self.strategy = strategy
        self.noise_multiplier = noise_multiplier
        self.clipping_norm = clipping_norm
        self.num_sampled_clients = num_sampled_clients
        self.current_arrays: ArrayRecord | None = None

    def required_nodes(self) -> int:
        """What the wrapped strategy needs."""
        return self.strategy.required_nodes()

    def reset(self) -> None:
        """Reset the wrapped strategy too."""
        super().reset()
        self.strategy.reset()
        self.current_arrays = None

    def configure_train(
        self, server_round: int, arrays: _ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The wrapped strategy's instructions; the arrays sent are remembered."""
        self.current_arrays = as_flower_arrays(arrays)
        if not self.clip_on_server:
            config = ConfigRecord(config)
            config[CLIPPING_NORM_KEY] = self.clipping_norm
        return self.strategy.configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Skip the round if a reply failed; clip (server side), aggregate, add noise."""
        replies = list(replies)
        if any(r.has_error() for r in replies):
            self.report(server_round, skipped="a client failed; DP rounds need every reply")
            return None, None
        if self.clip_on_server:
            replies = [self._clipped(r)[0] for r in replies]
        arrays, metrics = self.strategy.aggregate_train(server_round, replies)
        if arrays is None:
            return None, metrics  # type: ignore[return-value]
        return self._noised(arrays), metrics  # type: ignore[return-value]

    def _noised(self, arrays: _ArrayRecord) -> ArrayRecord:
        std = float(self.noise_multiplier * self.clipping_norm / self.num_sampled_clients)
        noised = {}
        for name, array in arrays.items():
            values = array.numpy().copy()
            values += np.random.normal(0, std, values.shape).astype(values.dtype)
            noised[name] = Array(values)
        return ArrayRecord(noised)

    def _clipped(self, reply: Message) -> tuple[Message, bool]:
        """The reply with its update clipped to the norm, and whether it had to be."""
        assert self.current_arrays is not None  # configure_train ran first
        sent = self.current_arrays.to_numpy_ndarrays()
        content = RecordDict(dict(reply.content))
        was_clipped = False
        for name, record in reply.content.array_records.items():
            returned = as_flower_arrays(record).to_numpy_ndarrays()
            update = [np.subtract(r, s) for r, s in zip(returned, sent, strict=True)]
            norm = float(np.sqrt(sum(np.linalg.norm(u.flat) ** 2 for u in update)))
            scale = min(1, self.clipping_norm / norm)
            was_clipped = was_clipped or scale < 1
            for u in update:
                u *= scale
            clipped = [s + u for s, u in zip(sent, update, strict=True)]
            content[name] = ArrayRecord(
                dict(zip(record, (Array(np.asarray(c)) for c in clipped), strict=True))
            )
        return reply.with_content(content), was_clipped

    def configure_evaluate(
        self, server_round: int, arrays: _ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The wrapped strategy's evaluation instructions."""
        return self.strategy.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """The wrapped strategy's evaluation metrics."""
        return self.strategy.aggregate_evaluate(server_round, replies)  # type: ignore[return-value]


class DifferentialPrivacyClientSideFixedClipping(DifferentialPrivacyServerSideFixedClipping):
    """Flower's client-side fixed-clipping DP wrapper: clients clip with ``fixedclipping_mod``.

    The clipping norm travels in the train config under fedlab's key, which the
    ``flwr.clientapp.mod.fixedclipping_mod`` of this layer reads.
    """

    clip_on_server = False


class DifferentialPrivacyServerSideAdaptiveClipping(DifferentialPrivacyServerSideFixedClipping):
    """Flower's server-side adaptive-clipping DP wrapper (see the module docstring)."""

    def __init__(
        self,
        strategy: _Strategy,
        noise_multiplier: float,
        num_sampled_clients: int,
        initial_clipping_norm: float = 0.1,
        target_clipped_quantile: float = 0.5,
        clip_norm_lr: float = 0.2,
        clipped_count_stddev: float | None = None,
    ) -> None:
        super().__init__(strategy, noise_multiplier, initial_clipping_norm, num_sampled_clients)
        if not 0 <= target_clipped_quantile <= 1:
            raise StrategyError(
                f"target_clipped_quantile must be in [0, 1], got {target_clipped_quantile!r}."
            )
        if clip_norm_lr <= 0:
            raise StrategyError(f"clip_norm_lr must be > 0, got {clip_norm_lr!r}.")
        if clipped_count_stddev is not None and clipped_count_stddev < 0:
            raise StrategyError(f"clipped_count_stddev must be >= 0, got {clipped_count_stddev!r}.")
        self.initial_clipping_norm = initial_clipping_norm
        self.target_clipped_quantile = target_clipped_quantile
        self.clip_norm_lr = clip_norm_lr
        self.requested_noise_multiplier = noise_multiplier
        if noise_multiplier > 0:
            sigma_b = (
                num_sampled_clients / 20 if clipped_count_stddev is None else clipped_count_stddev
            )
            if noise_multiplier >= 2 * sigma_b:
                raise StrategyError(
                    f"clipped_count_stddev={sigma_b} is too low for noise_multiplier="
                    f"{noise_multiplier}: it must exceed noise_multiplier/2 (it defaults to "
                    "num_sampled_clients/20); raise it or lower noise_multiplier."
                )
            self.noise_multiplier = (noise_multiplier ** (-2) - (2 * sigma_b) ** (-2)) ** -0.5
        else:
            sigma_b = 0.0 if clipped_count_stddev is None else clipped_count_stddev
            self.noise_multiplier = 0.0
        self.clipped_count_stddev = sigma_b

    def reset(self) -> None:
        """Start again from the initial clipping norm."""
        super().reset()
        self.clipping_norm = self.initial_clipping_norm

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Skip the round if a reply failed; clip, move the norm, aggregate, add noise."""
        replies = list(replies)
        if any(r.has_error() for r in replies):
            self.report(server_round, skipped="a client failed; DP rounds need every reply")
            return None, None
        if self.clip_on_server:
            clipped = [self._clipped(r) for r in replies]
            replies = [r for r, _ in clipped]
            count = sum(bit for _, bit in clipped)
            self._move_norm(count, len(replies))
            arrays, metrics = self.strategy.aggregate_train(server_round, replies)
        else:
            arrays, metrics = self.strategy.aggregate_train(server_round, replies)
            self._move_norm(sum(self._was_clipped(r) for r in replies), len(replies))
        if arrays is None:
            return None, metrics  # type: ignore[return-value]
        return self._noised(arrays), metrics  # type: ignore[return-value]

    def _move_norm(self, clipped: int, total: int) -> None:
        fraction = float(np.random.normal(clipped, self.clipped_count_stddev)) / float(total)
        self.clipping_norm *= math.exp(
            -self.clip_norm_lr * (fraction - self.target_clipped_quantile)
        )

    @staticmethod
    def _was_clipped(reply: Message) -> int:
        # fedlab's adaptiveclipping_mod reports 1 when the update fitted, Flower counts clipped.
        for record in reply.content.metric_records.values():
            if NORM_BIT_KEY in record:
                return 1 - int(bool(record[NORM_BIT_KEY]))
        raise AggregationError(
            f"The reply of node {reply.metadata.src_node_id} has no {NORM_BIT_KEY!r} metric; "
            "client-side adaptive clipping needs adaptiveclipping_mod in the ClientApp's mods."
        )


class DifferentialPrivacyClientSideAdaptiveClipping(DifferentialPrivacyServerSideAdaptiveClipping):
    """Flower's client-side adaptive-clipping DP wrapper: clients use ``adaptiveclipping_mod``."""

    clip_on_server = False
