"""Federated ``StandardScaler`` statistics: each client sends sums, never a row.

A client answers the ``query.scaler-stats`` message with its row count, the per-column sum
and the per-column sum of squares; the server adds them up. The pooled mean is
``sum / count`` and the pooled (population) variance ``sum_sq / count - mean**2``, exactly
what ``StandardScaler().fit`` computes on all rows together, up to float64 rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.preprocessing import StandardScaler

from fedlab import ArrayRecord, ClientApp, Context, Grid, Message, RecordDict
from fedlab.events import RoundStarted
from fedlab_sklearn.errors import UnsupportedEstimatorError

__all__ = ["ScalerStats", "add_scaler_query", "federated_scaler_stats"]

ACTION = "scaler-stats"
#: ``(partition_id, num_partitions) -> x``: this client's feature rows.
LoadFeatures = Callable[[int, int], npt.ArrayLike]


@dataclass(frozen=True)
class ScalerStats:
    """Column statistics summed over clients: enough for a StandardScaler.

    Examples
    --------
    >>> a = ScalerStats.of(np.array([[1.0], [2.0]]))
    >>> b = ScalerStats.of(np.array([[3.0], [6.0]]))
    >>> total = ScalerStats.combine([a, b])
    >>> float(total.mean[0]), float(total.var[0])
    (3.0, 3.5)
    """

    count: int
    sum: npt.NDArray[np.float64]
    sum_sq: npt.NDArray[np.float64]

    @classmethod
    def of(cls, x: npt.ArrayLike) -> ScalerStats:
        """The statistics of one client's rows ``x`` (n_samples × n_features)."""
        rows = np.asarray(x, dtype=np.float64)
        return cls(len(rows), rows.sum(axis=0), np.square(rows).sum(axis=0))

    @classmethod
    def combine(cls, parts: Sequence[ScalerStats]) -> ScalerStats:
        """Add up several clients' statistics."""
        if not parts:
            raise UnsupportedEstimatorError("no client answered the scaler-stats query; check the clients' failures.")
        return cls(
            sum(p.count for p in parts),
            np.sum([p.sum for p in parts], axis=0),
            np.sum([p.sum_sq for p in parts], axis=0),
        )

    def to_arrays(self) -> ArrayRecord:
        """The statistics as a reply's ArrayRecord (``count``, ``sum``, ``sum_sq``)."""
        return ArrayRecord({"count": np.array(self.count, dtype=np.int64), "sum": self.sum, "sum_sq": self.sum_sq})

    @classmethod
    def from_arrays(cls, arrays: ArrayRecord) -> ScalerStats:
        """Read the statistics from a client's reply."""
        return cls(
            int(arrays["count"].numpy()),
            np.asarray(arrays["sum"].numpy(), dtype=np.float64),
            np.asarray(arrays["sum_sq"].numpy(), dtype=np.float64),
        )

    @property
    def mean(self) -> npt.NDArray[np.float64]:
        """The pooled per-column mean."""
        return self.sum / self.count

    @property
    def var(self) -> npt.NDArray[np.float64]:
        """The pooled per-column population variance (``ddof=0``, as StandardScaler)."""
        return np.maximum(self.sum_sq / self.count - np.square(self.mean), 0.0)

    def to_scaler(self) -> StandardScaler:
        """A fitted ``StandardScaler`` with the pooled ``mean_``, ``var_`` and ``scale_``."""
        scaler = StandardScaler()
        scaler.mean_, scaler.var_ = self.mean, self.var
        scale = np.sqrt(self.var)
        scaler.scale_ = np.where(scale == 0.0, 1.0, scale)  # constant columns, as sklearn does
        scaler.n_samples_seen_ = self.count
        scaler.n_features_in_ = len(self.sum)
        return scaler


def add_scaler_query(app: ClientApp, load_features: LoadFeatures) -> ClientApp:
    """Register ``@app.query("scaler-stats")``: the client replies with :class:`ScalerStats`.

    Parameters
    ----------
    app
        The ClientApp to add the query to.
    load_features
        ``(partition_id, num_partitions) -> x``: this client's unscaled feature rows.
    """

    @app.query(ACTION)
    def scaler_stats(msg: Message, ctx: Context) -> Message:
        x = load_features(int(ctx.node_config["partition-id"]), int(ctx.node_config["num-partitions"]))
        return msg.reply(RecordDict({"arrays": ScalerStats.of(x).to_arrays()}))

    return app


def federated_scaler_stats(grid: Grid, *, round_number: int = 1) -> ScalerStats:
    """Ask every client for its statistics (inside a ``ServerApp``'s main) and add them up.

    The query is announced as a round (``round_number``) so the dashboard shows who answered.
    Clients that fail are left out; if none answers, :class:`UnsupportedEstimatorError` is raised.
    """
    nodes = list(grid.get_node_ids())
    grid.events.emit(RoundStarted(run_id=grid.run_id, round=round_number, phase="query", node_ids=tuple(nodes)))
    messages = [
        grid.create_message(RecordDict(), f"query.{ACTION}", node, group_id=str(round_number)) for node in nodes
    ]
    replies: list[Any] = [r for r in grid.send_and_receive(messages) if r.has_content()]
    return ScalerStats.combine([ScalerStats.from_arrays(r.content.array_record("arrays")) for r in replies])
