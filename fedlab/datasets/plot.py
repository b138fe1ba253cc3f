"""`plot_label_distribution`: how the labels are spread over partitions, as bars or a heatmap."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from fedlab.datasets.metrics import compute_counts
from fedlab.errors import DatasetError, MissingDependencyError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from fedlab.datasets.federated_dataset import FederatedDataset
    from fedlab.datasets.partitioner import Partitioner

__all__ = ["plot_label_distribution"]

#: Up to this many partitions every one gets a tick label; beyond, ticks are spaced out.
_EVERY_TICK = 30
#: Up to this many cells a heatmap prints its numbers.
_ANNOTATED_CELLS = 150
#: Up to this many classes a legend is drawn unless asked otherwise.
_LEGEND_CLASSES = 20


def plot_label_distribution(
    source: Partitioner | FederatedDataset,
    label_column: str = "label",
    *,
    split: str | None = None,
    kind: Literal["bar", "heatmap"] = "bar",
    unit: Literal["count", "percent"] = "count",
    max_partitions: int | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    legend: bool | None = None,
    cmap: str | None = None,
) -> tuple[Figure, Axes, pd.DataFrame]:
    """Plot the labels of every partition: stacked bars, or a heatmap of partitions by class.

    Readable from a handful of partitions to several hundred: with many partitions the
    bars touch and ticks are spaced out, and a heatmap drops its per-cell numbers.

    Parameters
    ----------
    source
        A partitioner with its dataset, or a FederatedDataset.
    label_column
        The column to count.
    split
        The partitioned split of a FederatedDataset that has several.
    kind
        ``"bar"`` (one stacked bar per partition) or ``"heatmap"`` (classes by partitions).
    unit
        ``"count"`` (rows) or ``"percent"`` (of each partition's rows).
    max_partitions
        Plot only the first this many partitions.
    ax
        Draw into these axes; by default a new pyplot figure (shown inline in a notebook).
    title
        The title; by default it names the partitioner.
    legend
        Draw the class legend (bar) or colour bar (heatmap); by default only up to 20 classes.
    cmap
        A matplotlib colormap name.

    Returns
    -------
    tuple
        The figure, the axes and the DataFrame that was plotted (rows: partitions).
    """
    if kind not in ("bar", "heatmap"):
        raise DatasetError(f"kind must be 'bar' or 'heatmap', got {kind!r}.")
    if unit not in ("count", "percent"):
        raise DatasetError(f"unit must be 'count' or 'percent', got {unit!r}.")
    try:
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise MissingDependencyError("matplotlib", "datasets", "plot_label_distribution") from None
    frame = compute_counts(source, label_column, split=split, max_partitions=max_partitions)
    if unit == "percent":
        frame = frame.div(frame.sum(axis=1).replace(0, 1), axis=0) * 100.0
    num_partitions, num_classes = frame.shape
    width = float(np.clip(3 + 0.35 * num_partitions, 6, 16))
    if ax is None:
        height = 4.5 if kind == "bar" else float(np.clip(1.5 + 0.3 * num_classes, 3, 10))
        fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    else:
        fig = ax.get_figure()  # type: ignore[assignment]
    quantity = "rows" if unit == "count" else "% of partition"
    if kind == "bar":
        _bars(ax, frame, cmap, legend if legend is not None else num_classes <= _LEGEND_CLASSES)
        ax.set_ylabel(quantity)
    else:
        _heatmap(fig, ax, frame, cmap, unit, legend if legend is not None else True, quantity)
    ax.set_xlabel("partition id")
    if num_partitions > _EVERY_TICK:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=10, integer=True))
    else:
        ax.set_xticks(range(num_partitions))
    if title is None:
        from fedlab.datasets.federated_dataset import FederatedDataset

        partitioner = source.partitioner(split) if isinstance(source, FederatedDataset) else source
        title = f"{label_column} per partition ({type(partitioner).__name__}, {num_partitions} partitions)"
    ax.set_title(title)
    return fig, ax, frame


def _bars(ax: Any, frame: pd.DataFrame, cmap: str | None, legend: bool) -> None:
    import matplotlib

    num_partitions, num_classes = frame.shape
    many = num_partitions > _EVERY_TICK
    qualitative = cmap is None and num_classes <= 20  # tab10/tab20: one listed colour per class
    colors = matplotlib.colormaps[cmap or _default_cmap(num_classes)](
        np.arange(num_classes) if qualitative else np.linspace(0, 1, num_classes)
    )
    bottom = np.zeros(num_partitions)
    x = np.arange(num_partitions)
    edges = np.arange(num_partitions + 1) - 0.5
    for i, label in enumerate(frame.columns):
        values = frame[label].to_numpy(dtype=np.float64)
        if many:
            # Touching bars drawn as one stepped band per class: hundreds of partitions would
            # otherwise cost a Rectangle each and take seconds to render.
            lower, upper = (
                np.append(bottom, bottom[-1]),
                np.append(bottom + values, bottom[-1] + values[-1]),
            )
            ax.fill_between(
                edges, lower, upper, step="post", color=colors[i], label=str(label), linewidth=0
            )
        else:
            ax.bar(
                x, values, bottom=bottom, width=0.8, color=colors[i], label=str(label), linewidth=0
            )
        bottom += values
    ax.set_xlim(-0.5 if many else -0.6, num_partitions - (0.5 if many else 0.4))
    if legend:
        ax.legend(
            title=str(frame.columns.name),
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            fontsize="small",
            ncols=1 if num_classes <= 12 else 2,
            frameon=False,
        )


def _heatmap(
    fig: Any, ax: Any, frame: pd.DataFrame, cmap: str | None, unit: str, legend: bool, quantity: str
) -> None:
    values = frame.to_numpy(dtype=np.float64).T  # classes down, partitions across
    num_classes, num_partitions = values.shape
    image = ax.imshow(
        values, aspect="auto", interpolation="nearest", cmap=cmap or "viridis", origin="lower"
    )
    if num_classes <= 30:
        ax.set_yticks(range(num_classes), [str(c) for c in frame.columns])
    ax.set_ylabel(str(frame.columns.name))
    if num_classes * num_partitions <= _ANNOTATED_CELLS:
        threshold = values.max() / 2 if values.size else 0
        for (row, col), value in np.ndenumerate(values):
            text = f"{value:.0f}" if unit == "count" else f"{value:.0f}%"
            ax.text(
                col,
                row,
                text,
                ha="center",
                va="center",
                fontsize="x-small",
                color="black" if value > threshold else "white",
            )
    if legend:
        fig.colorbar(image, ax=ax, label=quantity)


def _default_cmap(num_classes: int) -> str:
    if num_classes <= 10:
        return "tab10"
    if num_classes <= 20:
        return "tab20"
    return "viridis"
