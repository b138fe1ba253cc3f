"""The JSON rows the live view lists (clients, failures), rebuilt only when they change.

At 1,000 clients and many failures, building every row again for each of ten updates a
second costs more than the whole delta; these caches keep the rows of the last update.
"""

from __future__ import annotations

from typing import Any

from fedlab.dashboard._model import DashboardModel, Failure

__all__ = ["RowCache"]


class RowCache:
    """The ``clients`` and ``failures`` trait values of a model, kept between updates.

    Examples
    --------
    >>> from fedlab.events import RunStarted
    >>> model = DashboardModel()
    >>> model.feed(RunStarted(run_id=1, num_rounds=1, node_ids=(7,), strategy="FedAvg"))
    >>> rows = RowCache()
    >>> rows.clients(model), rows.clients(model) is rows.clients(model)
    ([['7', None]], True)
    """

    def __init__(self) -> None:
        self._clients: list[list[Any]] = []
        self._key: tuple[int, int, tuple[int | None, ...]] | None = None
        self._failures: dict[Failure, dict[str, Any]] = {}

    def clients(self, model: DashboardModel) -> list[list[Any]]:
        """``[node id as text, partition id or None]`` per row, as the browser gets them."""
        key = (id(model.node_ids), len(model.node_ids), tuple(model.partitions))
        if key != self._key:
            # Node ids as text: they exceed JavaScript's exact integers (2**53).
            self._clients = [[str(n), p] for n, p in zip(model.node_ids, model.partitions)]
            self._key = key
        return self._clients

    def failures(self, model: DashboardModel) -> list[dict[str, Any]]:
        """:meth:`Failure.row` of each of the model's failures, oldest first."""
        rows = [self._failures.get(f) or f.row() for f in model.failures]
        self._failures = dict(zip(model.failures, rows))
        return rows
