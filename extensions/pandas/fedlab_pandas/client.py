"""The client side: ``@app.query()`` handlers that answer with aggregates of a local DataFrame.

Three queries, each over a list of numeric columns and optionally per group of a
categorical column:

* ``query.pandas-moments``: count, mean and M2 (see :mod:`fedlab_pandas._stats`);
* ``query.pandas-range``: count, minimum and maximum, from which the server builds common
  histogram edges;
* ``query.pandas-histogram``: counts over edges the server sends.

No row ever leaves the client. A cell (a column, or a column within one group) with fewer
than ``min_count`` non-missing values is left out of every reply: the mean of one value is
that value, and two answers that differ by one person reveal that person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

import fedlab as fl
from fedlab.errors import ClientAppError
from fedlab_pandas._stats import Moments

LoadFrame = Callable[[fl.Context], pd.DataFrame]

MOMENTS, RANGE, HISTOGRAM = "pandas-moments", "pandas-range", "pandas-histogram"


def _cells(
    frame: pd.DataFrame, columns: list[str], group_by: str, min_count: int
) -> Iterator[tuple[str, int, np.ndarray[Any, np.dtype[np.float64]]]]:
    """Yield ``(group label, column index, non-missing values)`` for every reportable cell."""
    missing = [c for c in [*columns, *([group_by] if group_by else [])] if c not in frame.columns]
    if missing:
        raise ClientAppError(
            f"This client's DataFrame has no column(s) {missing}; it has {list(frame.columns)}. "
            "Ask only for columns every client's load_frame returns."
        )
    groups: list[tuple[str, pd.DataFrame]]
    if group_by:
        groups = [(str(label), part) for label, part in frame.groupby(group_by, observed=True, sort=True)]
    else:
        groups = [("", frame)]
    for label, part in groups:
        for j, column in enumerate(columns):
            values = part[column].dropna().to_numpy(dtype=np.float64)
            if values.size >= max(min_count, 1):
                yield label, j, values


def _request(msg: fl.Message, client_min_count: int) -> tuple[list[str], str, int]:
    config = msg.content["config"]
    columns = [str(c) for c in config["columns"]]  # type: ignore[union-attr]
    group_by = str(config.get("group-by", ""))
    # The client's own threshold is a floor the server can raise but never lower.
    min_count = max(client_min_count, int(config.get("min-count", 0)))  # type: ignore[arg-type]
    return columns, group_by, min_count


def _reply(msg: fl.Message, labels: list[str], metrics: dict[str, Any]) -> fl.Message:
    content = fl.RecordDict({"metrics": fl.MetricRecord(metrics)})
    if labels:  # a reply whose every cell was withheld carries no labels at all
        content["cells"] = fl.ConfigRecord({"labels": labels})
    return msg.reply(content)


def analytics_client_app(
    load_frame: LoadFrame, *, min_count: int = 0, app: fl.ClientApp | None = None
) -> fl.ClientApp:
    """Return a ClientApp (or add to ``app``) answering the pandas analytics queries.

    Parameters
    ----------
    load_frame
        ``load_frame(ctx) -> DataFrame``: this client's data, e.g. from
        ``ctx.node_config["partition-id"]``. Called once per query; wrap it in
        :func:`fedlab.worker_cache` to load once per worker.
    min_count
        Withhold every cell with fewer non-missing values than this (``0``: report all).
        The server may ask for a higher threshold, never a lower one.
    app
        An existing ClientApp to add the three query handlers to.

    Returns
    -------
    ClientApp
        The app, answering ``query.pandas-moments``, ``query.pandas-range`` and
        ``query.pandas-histogram``.

    Examples
    --------
    >>> import pandas as pd
    >>> app = analytics_client_app(lambda ctx: pd.DataFrame({"x": [1.0, 2.0]}))
    >>> sorted(app.message_types)
    ['query.pandas-histogram', 'query.pandas-moments', 'query.pandas-range']
    """
    if min_count < 0:
        raise ClientAppError(f"min_count must be >= 0, got {min_count}.")
    app = fl.ClientApp() if app is None else app

    @app.query(MOMENTS)
    def moments(msg: fl.Message, ctx: fl.Context) -> fl.Message:
        columns, group_by, k = _request(msg, min_count)
        labels: list[str] = []
        index: list[int] = []
        count: list[int] = []
        mean: list[float] = []
        m2: list[float] = []
        lo: list[float] = []
        for label, j, values in _cells(load_frame(ctx), columns, group_by, k):
            m = Moments.of(values)
            labels.append(label)
            index.append(j)
            count.append(m.count)
            mean.append(m.mean)
            m2.append(m.m2)
            lo.append(m.mean_lo)
        metrics = {"column": index, "count": count, "mean": mean, "mean-lo": lo, "m2": m2} if labels else {"cells": 0}
        return _reply(msg, labels, metrics)

    @app.query(RANGE)
    def value_range(msg: fl.Message, ctx: fl.Context) -> fl.Message:
        columns, group_by, k = _request(msg, min_count)
        labels: list[str] = []
        index: list[int] = []
        low: list[float] = []
        high: list[float] = []
        for label, j, values in _cells(load_frame(ctx), columns, group_by, k):
            labels.append(label)
            index.append(j)
            low.append(float(values.min()))
            high.append(float(values.max()))
        metrics = {"column": index, "min": low, "max": high} if labels else {"cells": 0}
        return _reply(msg, labels, metrics)

    @app.query(HISTOGRAM)
    def histogram(msg: fl.Message, ctx: fl.Context) -> fl.Message:
        columns, group_by, k = _request(msg, min_count)
        config = msg.content["config"]
        edges = [np.asarray(config[f"edges.{j}"], dtype=np.float64) for j in range(len(columns))]
        labels: list[str] = []
        metrics: dict[str, Any] = {}
        index: list[int] = []
        for label, j, values in _cells(load_frame(ctx), columns, group_by, k):
            metrics[f"counts.{len(labels)}"] = np.histogram(values, bins=edges[j])[0].tolist()
            labels.append(label)
            index.append(j)
        metrics.update({"column": index} if labels else {"cells": 0})
        return _reply(msg, labels, metrics)

    return app
