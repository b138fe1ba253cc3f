"""The round of central DP that every DP wrapper shares (private to fedlab.privacy).

Per round: sample exactly ``m`` clients (fixed-size sampling, which the accountant
assumes), let the wrapped strategy instruct them, clip their updates (here, or on the
clients), let the wrapped strategy aggregate, add N(0, (z·C/m)²) to every value of the
aggregate, move ``C`` if clipping is adaptive, and report the ε spent (a PrivacySpent).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from typing import ClassVar

import numpy as np

from fedlab.errors import StrategyError
from fedlab.events import PrivacySpent
from fedlab.message import Message
from fedlab.privacy._clip import add_noise, clip_reply, reply_arrays, update_norm
from fedlab.privacy.accountant import PrivacyAccountant
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord
from fedlab.server.grid import Grid
from fedlab.strategy import FedAvg, Strategy, StrategyState

__all__ = ["CLIPPING_NORM_KEY", "CentralDP", "NORM_BIT_KEY", "adjusted_noise_multiplier", "count_noise"]

#: The train config key carrying the clipping norm to the clients' clipping mods.
CLIPPING_NORM_KEY = "dp-clipping-norm"
#: The reply metric in which an adaptive clipping mod reports 1 if its update was within C.
NORM_BIT_KEY = "dp-norm-bit"
# Relative slack for a client's clipped update: clipping in float64 then storing float32
# may leave the norm a few ulps above C.
_CLIENT_SLACK = 1e-5


class CentralDP(Strategy):
    """Base of the DP wrappers: the shared round; subclasses say where and how C is set."""

    #: True: the server clips each update; False: the clients do (with a clipping mod).
    clip_on_server: ClassVar[bool] = True
    #: True: C moves toward a quantile of the update norms (Andrew et al. 2021).
    adaptive: ClassVar[bool] = False
    streams_replies = False  # clipping needs the round's arrays and each reply in turn

    def __init__(
        self,
        strategy: Strategy,
        noise_multiplier: float,
        clipping_norm: float,
        num_sampled_clients: int,
        *,
        delta: float,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if not isinstance(strategy, FedAvg):
            raise StrategyError(
                f"{name} wraps an averaging strategy (FedAvg or one built on it, e.g. FedAvgM, "
                f"FedAdam, FedProx), got {type(strategy).__name__}."
            )
        if strategy.fraction_train != 1.0:
            raise StrategyError(
                f"{name} samples exactly num_sampled_clients clients itself (the accountant "
                f"assumes it); leave the wrapped strategy's fraction_train at 1.0, got "
                f"{strategy.fraction_train}."
            )
        if isinstance(num_sampled_clients, bool) or not isinstance(num_sampled_clients, int) or num_sampled_clients < 1:
            raise StrategyError(f"num_sampled_clients must be an int >= 1, got {num_sampled_clients!r}.")
        if strategy.min_train_nodes > num_sampled_clients:
            raise StrategyError(
                f"the wrapped strategy needs min_train_nodes={strategy.min_train_nodes} replies but "
                f"{name} samples only num_sampled_clients={num_sampled_clients}; lower min_train_nodes."
            )
        if not (isinstance(clipping_norm, int | float) and clipping_norm > 0):
            raise StrategyError(f"the clipping norm must be a number > 0, got {clipping_norm!r}.")
        self.strategy = strategy
        self.noise_multiplier = float(noise_multiplier)
        self.num_sampled_clients = num_sampled_clients
        self.accountant = PrivacyAccountant(noise_multiplier, delta, sampling="fixed-size")
        self.initial_clipping_norm = float(clipping_norm)
        #: The norm the next round clips to.
        self.clipping_norm = float(clipping_norm)
        self._sent: ArrayRecord | None = None
        self._population = 0
        self._noise_rng = np.random.default_rng()

    # -- what the subclasses decide ------------------------------------------------

    def update_noise_multiplier(self) -> float:
        """The multiplier of the noise on the aggregate (``z``; adaptive clipping adjusts it)."""
        return self.noise_multiplier

    def update_clipping_norm(self, bits: list[float]) -> None:
        """Move :attr:`clipping_norm` after a round whose updates gave ``bits`` (adaptive only)."""

    # -- the run -----------------------------------------------------------------------

    @property
    def fraction_evaluate(self) -> float:
        """The wrapped strategy's share of nodes asked to evaluate."""
        return self.strategy.fraction_evaluate

    def evaluate_on_clients(self, possible: bool) -> bool:
        """As the wrapped strategy's :meth:`FedAvg.evaluate_on_clients`."""
        return self.strategy.evaluate_on_clients(possible)

    def required_nodes(self) -> int:
        """At least ``num_sampled_clients`` nodes, and what the wrapped strategy needs."""
        return max(self.strategy.required_nodes(), self.num_sampled_clients)

    def begin_run(
        self,
        grid: Grid,
        initial_arrays: ArrayRecord,
        num_rounds: int,
        start_round: int,
        seed: int | None,
        timeout: float | None,
    ) -> None:
        """Start the wrapped strategy's run too; seed sampling and noise from ``seed``."""
        self.strategy.begin_run(grid, initial_arrays, num_rounds, start_round, seed, timeout)
        super().begin_run(grid, initial_arrays, num_rounds, start_round, seed, timeout)
        if start_round == 1:
            # Kept apart from the wrapped strategy's RNG, which orders the sampled clients.
            self.rng.seed(f"fedlab.privacy.sampling:{seed}" if seed is not None else None)
            noise_seed = None if seed is None else random.Random(f"fedlab.privacy.noise:{seed}").getrandbits(128)
            self._noise_rng = np.random.default_rng(noise_seed)

    def reset(self) -> None:
        """Forget earlier runs: the wrapped strategy's state, the clipping norm, ε."""
        super().reset()
        self.strategy.reset()
        self.clipping_norm = self.initial_clipping_norm
        self.accountant.reset()
        self._sent = None

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Sample exactly ``num_sampled_clients`` eligible nodes; the wrapped strategy instructs them."""
        self._sent = arrays
        if not self.clip_on_server:
            config[CLIPPING_NORM_KEY] = self.clipping_norm
        inner = self.strategy
        available = grid.wait_for_nodes(max(self.num_sampled_clients, inner.min_available_nodes), 60.0)
        eligible = list(inner.eligible_nodes(grid, available))
        if len(eligible) < self.num_sampled_clients:
            raise StrategyError(
                f"{type(self).__name__} samples {self.num_sampled_clients} clients a round but "
                f"only {len(eligible)} are eligible; lower num_sampled_clients or add clients."
            )
        self._population = len(eligible)
        chosen = self.rng.sample(eligible, self.num_sampled_clients)
        # The wrapped strategy (fraction_train=1.0) takes every node it is shown: show it
        # only the chosen ones, for this call.
        saved, inner.node_ids = inner.node_ids, tuple(sorted(chosen))
        try:
            return list(inner.configure_train(server_round, arrays, config, grid))
        finally:
            inner.node_ids = saved

    def check_train_reply(self, instruction: Message, reply: Message) -> str | None:
        """The wrapped strategy's checks; with client-side clipping, also that the client clipped."""
        reason = self.strategy.check_train_reply(instruction, reply)
        if reason is not None or self.clip_on_server:
            return reason
        sent = instruction.content.get(self.strategy.arrayrecord_key)
        config = instruction.content.get(self.strategy.configrecord_key)
        if not isinstance(sent, ArrayRecord) or not isinstance(config, ConfigRecord):
            return None
        bound = float(config[CLIPPING_NORM_KEY])  # type: ignore[arg-type]
        norm = update_norm(reply_arrays(reply)[1], sent)
        if norm > bound * (1 + _CLIENT_SLACK):
            return (
                f"its update has norm {norm:.6g} above the clipping norm {bound:.6g}: the client "
                "did not clip; add fixedclipping_mod (or adaptiveclipping_mod) to its ClientApp."
            )
        if self.adaptive and not _has_bit(reply):
            return f"it reports no {NORM_BIT_KEY!r} metric; add adaptiveclipping_mod to its ClientApp."
        return None

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Clip (server side), aggregate with the wrapped strategy, add noise, account."""
        base = self._sent
        if base is None:
            raise StrategyError("aggregate_train was called before configure_train.")
        prepared, bits = [], []
        clipping_norm = self.clipping_norm
        for reply in replies:
            if not reply.has_error():
                if self.clip_on_server:
                    reply, norm = clip_reply(reply, base, clipping_norm)
                    bits.append(1.0 if norm <= clipping_norm else 0.0)
                elif self.adaptive:
                    bits.append(_bit(reply))
            prepared.append(reply)
        arrays, metrics = self.strategy.aggregate_train(server_round, prepared)
        if arrays is None:
            return None, metrics
        std = self.update_noise_multiplier() * clipping_norm / self.num_sampled_clients
        arrays = add_noise(arrays, std, self._noise_rng)
        self.update_clipping_norm(bits)
        self.accountant.step(self.num_sampled_clients, self._population)
        self._report_privacy(server_round, clipping_norm)
        return arrays, metrics

    def _report_privacy(self, server_round: int, clipping_norm: float) -> None:
        if self._events is None:
            return
        accountant = self.accountant
        self._events.emit(
            PrivacySpent(
                run_id=self._run_id,
                round=server_round,
                epsilon=accountant.epsilon(),
                delta=accountant.delta,
                accountant=accountant.method,
                sampling=accountant.sampling,
                noise_multiplier=self.noise_multiplier,
                sampling_probability=self.num_sampled_clients / self._population,
                num_sampled=self.num_sampled_clients,
                population=self._population,
                steps=accountant.steps,
                clipping_norm=clipping_norm,
            )
        )

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """As the wrapped strategy (evaluation spends no privacy budget of the training data)."""
        return self.strategy.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """As the wrapped strategy."""
        return self.strategy.aggregate_evaluate(server_round, replies)

    def state_dict(self) -> StrategyState:
        """The wrapped strategy's state plus sampling and noise RNGs, the norm and the rounds accounted."""
        state = super().state_dict()
        inner = self.strategy.state_dict()
        state.arrays.update(inner.arrays)
        state.values.update(
            inner=inner.values,
            clipping_norm=self.clipping_norm,
            accounted=self.accountant.state(),
            noise_rng=self._noise_rng.bit_generator.state,
            population=self._population,
        )
        return state

    def load_state_dict(self, state: StrategyState) -> None:
        """Restore what :meth:`state_dict` returned."""
        super().load_state_dict(state)
        values = state.values
        self.strategy.load_state_dict(StrategyState(arrays=dict(state.arrays), values=dict(values.get("inner", {}))))
        self.clipping_norm = float(values.get("clipping_norm", self.clipping_norm))
        self.accountant.load_state(values.get("accounted", []))
        self._population = int(values.get("population", 0))
        if "noise_rng" in values:
            self._noise_rng.bit_generator.state = values["noise_rng"]

    def summary(self) -> str:
        """One line: the wrapper's settings and the wrapped strategy's."""
        where = "server" if self.clip_on_server else "clients"
        return (
            f"{type(self).__name__}({self.strategy.summary()}, noise_multiplier={self.noise_multiplier}, "
            f"clipping_norm={self.initial_clipping_norm}, num_sampled_clients={self.num_sampled_clients}, "
            f"clipped on the {where}, delta={self.accountant.delta})"
        )


def _has_bit(reply: Message) -> bool:
    return any(isinstance(r, MetricRecord) and NORM_BIT_KEY in r for r in reply.content.values())


def _bit(reply: Message) -> float:
    for record in reply.content.values():
        if isinstance(record, MetricRecord) and NORM_BIT_KEY in record:
            return float(record[NORM_BIT_KEY])  # type: ignore[arg-type]
    return 0.0


def adjusted_noise_multiplier(noise_multiplier: float, count_stddev: float, who: str) -> float:
    """Andrew et al. 2021, Thm. 1: the update's multiplier so that both releases together cost ``z``.

    ``z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2)``, where σ_b is the std of the noise on the count of
    unclipped updates.
    """
    if noise_multiplier == 0:
        return 0.0
    rest = noise_multiplier**-2 - (2 * count_stddev) ** -2 if count_stddev > 0 else -1.0
    if rest <= 0:
        raise StrategyError(
            f"{who}: clipped_count_stddev={count_stddev} is too small for noise_multiplier="
            f"{noise_multiplier}; it must exceed noise_multiplier / 2 (e.g. num_sampled_clients / 20 "
            "with enough clients)."
        )
    return math.sqrt(1 / rest)


def count_noise(bits: list[float], stddev: float, rng: np.random.Generator) -> float:
    """The noised count of unclipped updates."""
    noise = float(rng.normal(0.0, stddev)) if stddev > 0 else 0.0
    return sum(bits) + noise


