"""The server side: send the analytics queries through a Grid and combine the answers exactly.

Results are keyed by column name, or by ``(group, column)`` when grouped (group labels are
compared as strings). Only cells some client reported appear.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union, cast

import numpy as np
import pandas as pd

import fedlab as fl
from fedlab.errors import ServerAppError
from fedlab.events import RoundStarted
from fedlab_pandas._stats import Moments, QuantileEstimate, common_edges, quantile_from_histogram
from fedlab_pandas.client import HISTOGRAM, MOMENTS, RANGE

Key = Union[str, tuple[str, str]]


def _items(reply: fl.Message, record: str, key: str) -> list[Any]:
    """The list ``reply.content[record][key]`` (a reply's lists of numbers or labels)."""
    return cast(list[Any], reply.content[record][key])


@dataclass(frozen=True)
class Histogram:
    """Counts of a column over common ``edges`` (numpy's bins: half-open, the last closed)."""

    edges: list[float]
    counts: list[int]


class Analytics:
    """Ask the clients of ``grid`` for statistics of ``columns``; each method is one round.

    Parameters
    ----------
    grid
        The Grid a ServerApp's ``main`` receives.
    columns
        Numeric columns every client's DataFrame has.
    group_by
        A categorical column to group by, or None.
    min_count
        Ask clients to withhold cells with fewer values (they apply at least their own).
    """

    def __init__(
        self, grid: fl.Grid, columns: Sequence[str], *, group_by: str | None = None, min_count: int = 0
    ) -> None:
        if not columns:
            raise ServerAppError("Name at least one column to compute statistics of.")
        self.grid, self.columns, self.group_by = grid, [str(c) for c in columns], group_by
        self.min_count = min_count
        self.round = 0

    def _key(self, label: str, j: int) -> Key:
        return (label, self.columns[j]) if self.group_by else self.columns[j]

    def _ask(self, action: str, extra: Mapping[str, Any] | None = None) -> list[tuple[Key, int, fl.Message]]:
        """Send ``query.<action>`` to every node; return ``(key, cell index, reply)`` per cell."""
        self.round += 1
        config: dict[str, Any] = {"columns": self.columns, "group-by": self.group_by or "",
                                  "min-count": self.min_count, **(extra or {})}
        nodes = list(self.grid.get_node_ids())
        self.grid.events.emit(RoundStarted(run_id=self.grid.run_id, round=self.round, phase="query",
                                           node_ids=tuple(nodes)))
        messages = [
            self.grid.create_message(fl.RecordDict({"config": fl.ConfigRecord(config)}),
                                     f"query.{action}", node, group_id=str(self.round))
            for node in nodes
        ]
        cells: list[tuple[Key, int, fl.Message]] = []
        for reply in self.grid.send_and_receive(messages):
            if not reply.has_content():
                raise ServerAppError(f"A client failed to answer query.{action}: {reply.error}. "
                                     "Check that every client's load_frame has the columns asked for.")
            if "cells" in reply.content:
                labels, index = _items(reply, "cells", "labels"), _items(reply, "metrics", "column")
                cells += [(self._key(str(lab), int(j)), i, reply)
                          for i, (lab, j) in enumerate(zip(labels, index))]
        return cells

    def moments(self) -> dict[Key, Moments]:
        """Exact count, mean and M2 per cell, merged with Chan et al.'s update."""
        merged: dict[Key, Moments] = {}
        for key, i, reply in self._ask(MOMENTS):
            m = reply.content["metrics"]
            part = Moments(int(m["count"][i]), float(m["mean"][i]), float(m["m2"][i]),  # type: ignore[index]
                           float(m["mean-lo"][i]))  # type: ignore[index]
            merged[key] = merged.get(key, Moments(0, 0.0, 0.0)).merge(part)
        return merged

    def describe(self, ddof: int = 1) -> pd.DataFrame:
        """A DataFrame of count, mean, var and std per cell (pandas' ``ddof=1`` by default)."""
        rows = {key: {"count": m.count, "mean": m.mean + m.mean_lo, "var": m.variance(ddof),
                      "std": float(np.sqrt(m.variance(ddof)))} for key, m in self.moments().items()}
        frame = pd.DataFrame.from_dict(rows, orient="index")
        if self.group_by and len(frame):
            keys = cast(list[tuple[str, str]], list(rows))
            frame.index = pd.MultiIndex.from_tuples(keys, names=[self.group_by, "column"])
        return cast(pd.DataFrame, frame.sort_index())

    def ranges(self) -> dict[Key, tuple[float, float]]:
        """The exact minimum and maximum per cell (they reveal one value each: see the README)."""
        out: dict[Key, tuple[float, float]] = {}
        for key, i, reply in self._ask(RANGE):
            m = reply.content["metrics"]
            low, high = float(m["min"][i]), float(m["max"][i])  # type: ignore[index]
            if key in out:
                low, high = min(low, out[key][0]), max(high, out[key][1])
            out[key] = (low, high)
        return out

    def histograms(
        self, bins: int = 10, edges: Mapping[str, Sequence[float]] | None = None
    ) -> dict[Key, Histogram]:
        """Counts per cell over edges common to all clients and groups.

        Columns missing from ``edges`` get ``bins`` equal-width bins over the federated
        minimum and maximum (one extra round).
        """
        given = {str(c): [float(e) for e in v] for c, v in (edges or {}).items()}
        if any(c not in given for c in self.columns):
            column_range: dict[str, tuple[float, float]] = {}
            for key, (low, high) in self.ranges().items():
                c = key[1] if isinstance(key, tuple) else key
                old = column_range.get(c, (low, high))
                column_range[c] = (min(low, old[0]), max(high, old[1]))
            for c in self.columns:
                if c not in given and c in column_range:
                    given[c] = common_edges(*column_range[c], bins)
        # A column no client reported (every cell under the threshold) gets placeholder edges;
        # the clients withhold it again, so it has no histogram.
        extra = {f"edges.{j}": given.get(c, [0.0, 1.0]) for j, c in enumerate(self.columns)}
        out: dict[Key, Histogram] = {}
        for key, i, reply in self._ask(HISTOGRAM, extra):
            counts = np.asarray(reply.content["metrics"][f"counts.{i}"], dtype=np.int64)
            c = key[1] if isinstance(key, tuple) else key
            previous = out.get(key)
            total = counts if previous is None else counts + np.asarray(previous.counts)
            out[key] = Histogram(given[c], [int(v) for v in total])
        return out

    def quantiles(
        self, qs: Sequence[float] = (0.25, 0.5, 0.75), bins: int = 4096
    ) -> dict[Key, list[QuantileEstimate]]:
        """Quantiles per cell from a mergeable fixed-bin sketch (two rounds).

        A first round agrees each cell's exact minimum and maximum; a second sums histograms
        of ``bins`` equal bins over them. Each estimate is within one bin width,
        ``(max - min) / bins``, of the ``k``-th smallest pooled value, ``k = ceil(q * n)``,
        and its rank is within the count of that bin (both bounds come with the estimate).
        """
        if any(not 0 <= q <= 1 for q in qs):
            raise ServerAppError(f"Quantiles must lie in [0, 1], got {list(qs)}.")
        cell_range = self.ranges()
        out: dict[Key, list[QuantileEstimate]] = {}
        by_column: dict[str, tuple[float, float]] = {}
        for key, (low, high) in cell_range.items():
            c = key[1] if isinstance(key, tuple) else key
            old = by_column.get(c, (low, high))
            by_column[c] = (min(low, old[0]), max(high, old[1]))
        # Edges common to every group of a column, so one round serves them all; each cell
        # is then read between its own exact minimum and maximum.
        edges = {c: common_edges(low, high, bins) for c, (low, high) in by_column.items()}
        edges.update({c: [0.0, 1.0] for c in self.columns if c not in edges})  # none reported
        for key, hist in self.histograms(edges=edges).items():
            if key not in cell_range:
                continue
            low, high = cell_range[key]
            out[key] = [quantile_from_histogram(hist.counts, hist.edges, q, low, high) for q in qs]
        return out


@dataclass
class Report:
    """What :func:`analytics_server_app` computed, filled in when its run ends."""

    describe: pd.DataFrame | None = None
    histograms: dict[Key, Histogram] = field(default_factory=dict)
    quantiles: dict[Key, list[QuantileEstimate]] = field(default_factory=dict)


def analytics_server_app(
    columns: Sequence[str],
    *,
    group_by: str | None = None,
    bins: int = 10,
    edges: Mapping[str, Sequence[float]] | None = None,
    quantiles: Sequence[float] = (0.25, 0.5, 0.75),
    sketch_bins: int = 4096,
    min_count: int = 0,
) -> tuple[fl.ServerApp, Report]:
    """A ServerApp computing describe, histograms and quantiles of ``columns``, and its Report.

    The run takes four or five query rounds (moments; ranges unless every column's
    ``edges`` are given; histograms; ranges and sketches for the quantiles).

    Examples
    --------
    >>> server, report = analytics_server_app(["x"])
    >>> report.describe is None
    True
    """
    server, report = fl.ServerApp(), Report()

    @server.main()
    def main(grid: fl.Grid, context: fl.Context) -> None:
        ask = Analytics(grid, columns, group_by=group_by, min_count=min_count)
        report.describe = ask.describe()
        report.histograms = ask.histograms(bins, edges)
        if quantiles:
            report.quantiles = ask.quantiles(quantiles, sketch_bins)

    return server, report
