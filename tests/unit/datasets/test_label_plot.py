"""plot_label_distribution renders real PNGs, readable from 10 to 500 partitions."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest

from fedlab.datasets import DirichletPartitioner, FederatedDataset, plot_label_distribution
from fedlab.errors import DatasetError
from tests.unit.datasets.partition_checks import labelled


@pytest.fixture(autouse=True)
def close_figures() -> None:
    yield
    plt.close("all")


def skewed(num_partitions: int, rows: int) -> FederatedDataset:
    partitioner = DirichletPartitioner(num_partitions, "label", 0.3, min_partition_size=0, seed=0)
    return FederatedDataset(labelled(rows, 10), partitioners={"train": partitioner})


def assert_non_blank_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 150 and pixels.shape[1] > 300
    assert pixels[..., :3].var() > 0.01  # drawn, not a uniform canvas
    assert (pixels[..., :3] < 0.9).mean() > 0.02  # a real share of non-white pixels


@pytest.mark.parametrize("kind", ["bar", "heatmap"])
@pytest.mark.parametrize("num_partitions", [10, 500])
def test_the_plot_renders_a_non_blank_png(tmp_path: Path, kind: str, num_partitions: int) -> None:
    fds = skewed(num_partitions, rows=max(1000, 4 * num_partitions))
    fig, ax, frame = plot_label_distribution(fds, kind=kind)  # type: ignore[arg-type]
    path = tmp_path / f"{kind}-{num_partitions}.png"
    fig.savefig(path, dpi=60)
    assert_non_blank_png(path)
    assert frame.shape == (num_partitions, 10)
    assert "partitions" in ax.get_title()


def test_ten_partitions_get_one_tick_each_and_500_get_a_readable_few() -> None:
    _, few, _ = plot_label_distribution(skewed(10, 1000))
    assert [t.get_text() for t in few.get_xticklabels()] == [str(i) for i in range(10)]
    _, many, _ = plot_label_distribution(skewed(500, 2000), kind="heatmap")
    assert 3 <= len(many.get_xticks()) <= 12
    assert not many.texts  # no per-cell numbers on 5,000 cells
    _, annotated, _ = plot_label_distribution(skewed(10, 1000), kind="heatmap")
    assert len(annotated.texts) == 100


def test_percent_rows_add_up_to_100_and_the_plot_can_draw_into_given_axes() -> None:
    fig, ax = plt.subplots()
    returned_fig, returned_ax, frame = plot_label_distribution(
        skewed(10, 1000), unit="percent", ax=ax, title="mine"
    )
    assert returned_ax is ax and returned_fig is fig and ax.get_title() == "mine"
    assert np.allclose(frame.sum(axis=1), 100.0)


def test_the_plot_refuses_an_unknown_kind_or_unit() -> None:
    with pytest.raises(DatasetError, match="kind"):
        plot_label_distribution(skewed(2, 100), kind="pie")  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="unit"):
        plot_label_distribution(skewed(2, 100), unit="fraction")  # type: ignore[arg-type]
