"""`Scaffold` (Karimireddy et al., 2020): control variates that correct client drift."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from fedlab.errors import AggregationError, StrategyError
from fedlab.message import Message, MessageType
from fedlab.records import ArrayRecord, ConfigRecord
from fedlab.server.grid import Grid
from fedlab.strategy._aggregate import _from_accumulator
from fedlab.strategy._arrays import (
    Float64Arrays,
    check_matches_global,
    from_float64,
    norm,
    require_global,
    to_float64,
)
from fedlab.strategy.fedavg import FedAvg
from fedlab.strategy.strategy import StrategyState

__all__ = ["CONTROL_DELTA_KEY", "SERVER_CONTROL_KEY", "Scaffold", "control_record"]

#: Record name of the server control variate c in a training instruction.
SERVER_CONTROL_KEY = "scaffold-control"
#: Record name of the client's control variate change Δc_i in its reply.
CONTROL_DELTA_KEY = "scaffold-control-delta"

_FLOATS = ("float16", "float32", "float64", "bfloat16")


def control_record(values: Mapping[str, Any], like: ArrayRecord) -> ArrayRecord:
    """Control variates as sent on the wire: each in its array's float dtype (integers: float32)."""
    out = ArrayRecord()
    for name, array in like.items():
        dtype = array.dtype if array.dtype in _FLOATS else "float32"
        out[name] = _from_accumulator(np.asarray(values[name], dtype=np.float64), dtype)
    return out


class Scaffold(FedAvg):
    """SCAFFOLD: clients correct every gradient step by ``c − c_i`` (server minus own control).

    Algorithm 1 of Karimireddy et al. ("SCAFFOLD: stochastic controlled averaging for
    federated learning", ICML 2020). The server keeps the model x and a control variate
    c (starting at 0) and sends both (c under ``"scaffold-control"``). Each sampled client
    i runs K local steps ``y ← y − η_l·(g_i(y) − c_i + c)``, updates its own control
    variate (option II) ``c_i⁺ = c_i − c + (x − y)/(K·η_l)``, and replies with its model
    y_i and Δc_i = c_i⁺ − c_i (under ``"scaffold-control-delta"``);
    :class:`~fedlab.strategy.ScaffoldClient` does all of this in a few calls. With S the
    successful replies and N the nodes the strategy could have sampled, the server sets::

        x ← x + η_g · (1/|S|) Σ_i (y_i − x)
        c ← c + (|S|/N) · (1/|S|) Σ_i Δc_i

    Both means are unweighted, as in the paper (``num-examples`` only weights metrics).

    Parameters
    ----------
    server_learning_rate
        η_g (default 1.0).
    **fedavg
        Sampling, minimums and keys, as for :class:`FedAvg`.

    Notes
    -----
    The control variate c is kept in float64 and saved by :meth:`state_dict`; it is sent
    in each array's float dtype. Each client keeps c_i in its ``context.state``.
    """

    #: Both means are unweighted (``num-examples`` weighs the metrics).
    weighs_arrays = False

    def __init__(self, *, server_learning_rate: float = 1.0, **fedavg: Any) -> None:
        super().__init__(**fedavg)
        if isinstance(server_learning_rate, bool) or not server_learning_rate > 0:
            raise StrategyError(f"server_learning_rate must be > 0, got {server_learning_rate!r}.")
        self.server_learning_rate = float(server_learning_rate)
        self._control: Float64Arrays | None = None
        self._population = 0

    def reset(self) -> None:
        """Start the next run with the server control variate c = 0, as a fresh strategy does."""
        super().reset()
        self._control = None
        self._population = 0

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Send x, c and the config to a sample of nodes (and count N, the eligible nodes)."""
        self._current_arrays = arrays
        if self._control is None:
            self._control = {name: np.zeros(array.shape) for name, array in arrays.items()}
        nodes = self.sample_nodes(grid, self.fraction_train, self.min_train_nodes, self.min_available_nodes)
        self._population = len(self.eligible_nodes(grid))
        control = control_record(self._control, arrays)
        return self._instructions(
            grid, nodes, arrays, config, MessageType.TRAIN, server_round, {SERVER_CONTROL_KEY: control}
        )

    def expected_arrays(self, instruction: Message) -> dict[str, ArrayRecord]:
        """The model under ``arrayrecord_key`` and Δc_i under ``"scaffold-control-delta"``.

        Δc_i must have the layout of the control variate c that was sent with the model.
        """
        expected = super().expected_arrays(instruction)
        control = instruction.content.get(SERVER_CONTROL_KEY)
        if isinstance(control, ArrayRecord):
            expected[CONTROL_DELTA_KEY] = control
        return expected

    def aggregate_arrays(self, server_round: int, replies: Sequence[Message]) -> ArrayRecord:
        """Move x by η_g times the mean model change and c by |S|/N times the mean Δc_i."""
        current = require_global(type(self).__name__, self.current_arrays)
        if self._control is None:
            raise AggregationError("Scaffold has no control variate yet; configure_train creates it.")
        x = to_float64(current)
        dx = {name: np.zeros_like(v) for name, v in x.items()}
        dc = {name: np.zeros_like(v) for name, v in x.items()}
        for reply in replies:
            model, delta = self._records(reply, current)
            for name in x:
                dx[name] += model[name] - x[name]
                dc[name] += delta[name]
        count = len(replies)
        population = max(self._population, count)
        new: Float64Arrays = {}
        for name in x:
            new[name] = x[name] + self.server_learning_rate * (dx[name] / count)
            self._control[name] = self._control[name] + (count / population) * (dc[name] / count)
        self.report(
            server_round,
            aggregated=count,
            population=population,
            server_learning_rate=self.server_learning_rate,
            control_norm=norm(self._control),
        )
        return from_float64(new, current)

    def state_dict(self) -> StrategyState:
        """The sampling RNG and the server control variate c (float64)."""
        state = super().state_dict()
        if self._control is not None:
            state.arrays["control"] = ArrayRecord(dict(self._control))
        return state

    def load_state_dict(self, state: StrategyState) -> None:
        """Restore what :meth:`state_dict` returned."""
        super().load_state_dict(state)
        control = state.arrays.get("control")
        self._control = None if control is None else to_float64(control)

    def _records(self, reply: Message, current: ArrayRecord) -> tuple[Float64Arrays, Float64Arrays]:
        node_id = reply.metadata.src_node_id
        model, delta = reply.content.get(self.arrayrecord_key), reply.content.get(CONTROL_DELTA_KEY)
        if not isinstance(model, ArrayRecord) or not isinstance(delta, ArrayRecord):
            raise AggregationError(
                f"Scaffold needs node {node_id} to reply with its model under "
                f"{self.arrayrecord_key!r} and its control variate change under "
                f"{CONTROL_DELTA_KEY!r} (both ArrayRecords); it replied with {sorted(reply.content)}. "
                "Build the reply with fedlab.strategy.ScaffoldClient.reply_content(...)."
            )
        check_matches_global(node_id, model, current)
        check_matches_global(node_id, delta, current)
        return to_float64(model), to_float64(delta)
