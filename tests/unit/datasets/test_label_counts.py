"""compute_counts and compute_frequencies: labels per partition as DataFrames."""

from __future__ import annotations

import datasets
import numpy as np
import pandas as pd
import pytest

from fedlab.datasets import (
    DirichletPartitioner,
    FederatedDataset,
    SizePartitioner,
    VerticalEvenPartitioner,
    compute_counts,
    compute_frequencies,
)
from fedlab.errors import DatasetError
from tests.unit.datasets.partition_checks import labelled

DATA = datasets.Dataset.from_dict({"label": ["b", "a", "c", "a", "a", "b"], "x": range(6)})


def test_counts_have_one_row_per_partition_and_a_zero_for_missing_labels() -> None:
    partitioner = SizePartitioner([3, 2, 1], shuffle=False)
    partitioner.dataset = DATA
    counts = compute_counts(partitioner)
    expected = pd.DataFrame(
        [[1, 1, 1], [2, 0, 0], [0, 1, 0]],
        index=pd.RangeIndex(3, name="partition_id"),
        columns=pd.Index(["a", "b", "c"], name="label"),
    )
    pd.testing.assert_frame_equal(counts, expected)


def test_frequencies_are_counts_over_row_totals() -> None:
    partitioner = SizePartitioner([3, 2, 0], shuffle=False)
    partitioner.dataset = DATA
    frequencies = compute_frequencies(partitioner)
    assert frequencies.to_numpy().tolist() == [
        [1 / 3, 1 / 3, 1 / 3],
        [1.0, 0.0, 0.0],
        [0.0, 0.0, 0.0],
    ]


def test_counts_of_a_federated_dataset_sum_to_the_class_sizes_and_use_class_names() -> None:
    data = labelled(300, 3).cast_column("label", datasets.ClassLabel(names=["cat", "dog", "eel"]))
    fds = FederatedDataset(
        data, partitioners={"train": DirichletPartitioner(5, "label", 0.5, min_partition_size=0)}
    )
    counts = compute_counts(fds, max_partitions=None)
    assert list(counts.columns) == ["cat", "dog", "eel"]
    assert counts.sum(axis=0).tolist() == [100, 100, 100]
    assert len(compute_counts(fds, max_partitions=2)) == 2


def test_a_vertical_party_counts_labels_only_if_it_holds_the_label_column() -> None:
    partitioner = VerticalEvenPartitioner(2, active_party_columns=["label"], active_party_id=1)
    partitioner.dataset = DATA.add_column("z", list(range(6)))
    counts = compute_counts(partitioner)
    assert counts.to_numpy().tolist() == [[0, 0, 0], [3, 2, 1]]


def test_counts_name_the_missing_column_and_refuse_other_sources() -> None:
    partitioner = SizePartitioner([2])
    partitioner.dataset = DATA
    with pytest.raises(DatasetError, match="needs the column 'y'"):
        compute_counts(partitioner, "y")
    with pytest.raises(DatasetError, match="Partitioner or a FederatedDataset"):
        compute_counts(np.zeros(3))  # type: ignore[arg-type]
