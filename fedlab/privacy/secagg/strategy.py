"""`SecAggPlus`: secure aggregation (SecAgg+) around any averaging strategy."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from fedlab.errors import StrategyError
from fedlab.message import Message, MessageType
from fedlab.privacy.secagg.protocol import COLLECT, RECORD, SETUP, SHARE_KEYS, STAGE, UNMASK, SecAggError
from fedlab.privacy.secagg.quantize import check_ranges, dequantize, error_bound
from fedlab.privacy.secagg.server import SecAggRound
from fedlab.records import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.server.grid import Grid
from fedlab.strategy import Strategy, StrategyState
from fedlab.validate import check_int

__all__ = ["SecAggPlus"]


class SecAggPlus(Strategy):
    """Wrap ``strategy`` so the server only ever sees the sum of the clients' updates.

    Each training round becomes the four SecAgg+ stages (Bell et al. 2020, see
    :mod:`fedlab.privacy.secagg.protocol`), all sent through the normal Grid, so it runs
    in simulation and in deployment alike. ``configure_train`` asks the wrapped strategy
    whom to train, then runs the ``setup`` and ``share-keys`` exchanges; the round's
    training messages carry the forwarded shares; ``aggregate_train`` runs ``unmask``,
    removes the masks and hands the wrapped strategy one reply per survivor, each holding
    the survivors' weighted mean (so FedAvg returns exactly that mean). Clients must run
    :func:`~fedlab.mods.secagg.secaggplus_mod` (``ClientApp(mods=[secaggplus_mod])``).

    Each client sends ``w * q(update)`` and ``w`` masked, where ``update`` is its reply's
    arrays minus the global arrays (flattened), ``q`` quantises it (see
    :mod:`fedlab.privacy.secagg.quantize`) and ``w`` is its ``num-examples``, rounded and
    capped at ``max_weight``. The aggregate equals the weighted mean of the updates clipped
    to ``[-clipping_range, clipping_range]`` within :attr:`error_bound` per element.
    Clients' own training metrics are not sent (they would leak per-client values); the
    round's metrics hold only the total weight.

    Parameters
    ----------
    strategy
        The strategy to wrap (FedAvg or any strategy that averages the training replies).
    num_shares
        How many holders share each client's secrets (itself and ``num_shares - 1``
        neighbours in a random regular graph); all clients when at least their number.
    reconstruction_threshold
        How many shares rebuild a secret; a neighbourhood survives
        ``num_shares - reconstruction_threshold`` dropouts. Above ``num_shares / 2`` keeps
        a server from rebuilding both secrets of one client from honest answers.
    clipping_range
        Updates are clipped to ``[-clipping_range, clipping_range]`` element-wise.
    quantization_range
        Quantised values lie in ``[0, quantization_range)``.
    modulus_range
        Arithmetic is mod this power of two (≤ 2**62); it must exceed
        ``clients * max_weight * (quantization_range - 1)``.
    max_weight
        The largest integer weight a client may give its update.
    timeout
        Seconds to wait for each of the extra stages' replies (None: forever).
    """

    def __init__(
        self,
        strategy: Strategy,
        *,
        num_shares: int,
        reconstruction_threshold: int,
        clipping_range: float = 8.0,
        quantization_range: int = 2**20,
        modulus_range: int = 2**48,
        max_weight: int = 1000,
        timeout: float | None = 60.0,
    ) -> None:
        super().__init__()
        if not isinstance(strategy, Strategy):
            raise StrategyError(f"SecAggPlus wraps a Strategy, got {type(strategy).__name__}.")
        self.strategy = strategy
        self.num_shares = check_int("num_shares", num_shares, StrategyError, minimum=1)
        self.reconstruction_threshold = check_int(
            "reconstruction_threshold", reconstruction_threshold, StrategyError, minimum=1
        )
        if reconstruction_threshold > num_shares:
            raise StrategyError(
                f"reconstruction_threshold={reconstruction_threshold} exceeds num_shares="
                f"{num_shares}: no secret could ever be rebuilt. Lower it or raise num_shares."
            )
        if not clipping_range > 0:
            raise StrategyError(f"clipping_range must be positive, got {clipping_range!r}.")
        self.clipping_range = float(clipping_range)
        self.quantization_range = check_int("quantization_range", quantization_range, StrategyError, minimum=2)
        self.modulus_range = check_int("modulus_range", modulus_range, StrategyError, minimum=4)
        self.max_weight = check_int("max_weight", max_weight, StrategyError, minimum=1)
        check_ranges(1, self.max_weight, self.quantization_range, self.modulus_range)
        self.timeout = timeout
        self._grid: Grid | None = None
        self._round: SecAggRound | None = None
        self._sent: dict[int, Message] = {}
        self._global: ArrayRecord | None = None

    @property
    def error_bound(self) -> float:
        """The largest error per element of the aggregate: ``clipping_range / (Q - 1)``."""
        return error_bound(self.clipping_range, self.quantization_range)

    # -- training: the four stages ------------------------------------------------------

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Choose the clients with the wrapped strategy, then run ``setup`` and ``share-keys``."""
        messages = list(self.strategy.configure_train(server_round, arrays, config, grid))
        if not messages:
            return []
        nodes = [m.metadata.dst_node_id for m in messages]
        check_ranges(len(nodes), self.max_weight, self.quantization_range, self.modulus_range)
        rnd = SecAggRound(
            nodes,
            num_shares=self.num_shares,
            threshold=self.reconstruction_threshold,
            modulus_range=self.modulus_range,
            rng=self.rng,
        )
        params = {
            "clipping-range": self.clipping_range,
            "quantization-range": self.quantization_range,
            "modulus-range": self.modulus_range,
            "max-weight": self.max_weight,
        }
        keys = self._stage(grid, server_round, SETUP, {n: {**rnd.setup(n), **params} for n in nodes})
        public = {n: (bytes(r["pk-c"]), bytes(r["pk-s"])) for n, r in keys.items()}
        self._enough(len(public), "answered the setup stage")
        shared = self._stage(grid, server_round, SHARE_KEYS, rnd.share_keys(public))
        self._enough(len(shared), "sent their encrypted shares")
        inbox = rnd.route({n: (list(r["dst"]), list(r["ciphertexts"])) for n, r in shared.items()})
        self._grid, self._round, self._global = grid, rnd, arrays
        self._sent = {}
        out = []
        for message in messages:
            node = message.metadata.dst_node_id
            if node in inbox:
                content = RecordDict(dict(message.content))
                content[RECORD] = ConfigRecord({STAGE: COLLECT, **inbox[node]})
                self._sent[node] = message.with_content(content)
                out.append(self._sent[node])
        return out

    def check_train_reply(self, instruction: Message, reply: Message) -> str | None:
        """Refuse a reply that is not exactly one masked vector of the model's size."""
        record = reply.content.get(RECORD)
        if not isinstance(record, ArrayRecord) or list(record) != ["masked"] or len(reply.content) != 1:
            return "a SecAgg+ reply must hold only ArrayRecord 'secagg' with array 'masked'; add secaggplus_mod to the ClientApp's mods."
        size = sum(int(np.prod(a.shape)) for a in (self._global or ArrayRecord()).values()) + 1
        masked = record["masked"]
        if masked.shape != (size,) or masked.dtype not in ("uint32", "uint64"):
            return f"the masked vector has shape {masked.shape} and dtype {masked.dtype}, expected ({size},) uint32/uint64."
        return None

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Run ``unmask``, remove the masks and let the wrapped strategy average the sum."""
        if self._round is None or self._grid is None or self._global is None:
            raise SecAggError("aggregate_train was called before configure_train.")
        rnd, grid, global_arrays = self._round, self._grid, self._global
        masked = {r.metadata.src_node_id: _masked(r) for r in replies if not r.has_error()}
        revealed = self._stage(grid, server_round, UNMASK, rnd.unmask_requests(masked))
        total = rnd.unmask(revealed)
        weight = int(total[-1])
        if weight == 0:
            raise SecAggError("the survivors' weights sum to 0; nothing can be averaged.")
        delta = dequantize(total[:-1] / float(weight), self.clipping_range, self.quantization_range)
        mean = ArrayRecord()
        offset = 0
        for name, array in global_arrays.items():
            base = array.numpy()
            step = delta[offset : offset + base.size].reshape(base.shape)
            mean[name] = Array.from_numpy((base.astype(np.float64) + step).astype(base.dtype))
            offset += base.size
        self._round = None
        self.report(server_round, secagg_survivors=len(masked), secagg_revealed_by=len(revealed),
                    total_weight=weight)
        key = getattr(self.strategy, "arrayrecord_key", "arrays")
        weight_key = getattr(self.strategy, "weighted_by_key", "num-examples")
        share = weight / len(masked)
        stand_ins = [
            self._sent[node].reply(RecordDict({key: mean, "metrics": MetricRecord({weight_key: share})}))
            for node in masked
        ]
        return self.strategy.aggregate_train(server_round, stand_ins)

    def _stage(
        self, grid: Grid, server_round: int, stage: str, configs: dict[int, dict[str, Any]]
    ) -> dict[int, dict[str, Any]]:
        """Send one stage's instructions; return the valid replies' records by node."""
        messages = [
            grid.create_message(
                RecordDict({RECORD: ConfigRecord({STAGE: stage, **cfg})}),
                MessageType.TRAIN, node, group_id=str(server_round),
            )
            for node, cfg in configs.items()
        ]
        out = {}
        for reply in grid.send_and_receive(messages, timeout=self.timeout):
            record = None if reply.has_error() else reply.content.get(RECORD)
            if isinstance(record, ConfigRecord):
                out[reply.metadata.src_node_id] = dict(record)
        return out

    def _enough(self, count: int, what: str) -> None:
        if count < self.reconstruction_threshold:
            raise SecAggError(
                f"only {count} client(s) {what}, fewer than reconstruction_threshold="
                f"{self.reconstruction_threshold}; the round cannot be aggregated securely."
            )

    # -- everything else is the wrapped strategy's ---------------------------------------

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The wrapped strategy's evaluation instructions (evaluation is not aggregated securely)."""
        return self.strategy.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """The wrapped strategy's evaluation metrics."""
        return self.strategy.aggregate_evaluate(server_round, replies)

    def begin_run(
        self,
        grid: Grid,
        initial_arrays: ArrayRecord,
        num_rounds: int,
        start_round: int,
        seed: int | None,
        timeout: float | None,
    ) -> None:
        """Start the run for this wrapper and for the wrapped strategy (which samples)."""
        super().begin_run(grid, initial_arrays, num_rounds, start_round, seed, timeout)
        self.strategy.begin_run(grid, initial_arrays, num_rounds, start_round, seed, timeout)

    def reset(self) -> None:
        """Forget the current round and reset the wrapped strategy."""
        super().reset()
        self.strategy.reset()
        self._round, self._grid, self._global, self._sent = None, None, None, {}

    def required_nodes(self) -> int:
        """What the wrapped strategy needs, and at least ``reconstruction_threshold``."""
        return max(self.strategy.required_nodes(), self.reconstruction_threshold)

    def state_dict(self) -> StrategyState:
        """The wrapped strategy's state plus this wrapper's graph RNG."""
        state = self.strategy.state_dict()
        state.values["secagg-rng"] = super().state_dict().values["rng"]
        return state

    def load_state_dict(self, state: StrategyState) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.strategy.load_state_dict(state)
        own = state.values.get("secagg-rng")
        if own is not None:
            super().load_state_dict(StrategyState(values={"rng": own}))

    def summary(self) -> str:
        """One line: the settings and the wrapped strategy's summary."""
        return (
            f"SecAggPlus(num_shares={self.num_shares}, reconstruction_threshold="
            f"{self.reconstruction_threshold}, clipping_range={self.clipping_range}, "
            f"quantization_range={self.quantization_range}, modulus_range={self.modulus_range}) "
            f"around {self.strategy.summary()}"
        )


def _masked(reply: Message) -> np.ndarray:
    """The masked vector of a reply that passed :meth:`SecAggPlus.check_train_reply`."""
    record = reply.content[RECORD]
    assert isinstance(record, ArrayRecord)  # check_train_reply refused anything else
    vector: np.ndarray = record["masked"].numpy().astype(np.uint64)
    return vector
