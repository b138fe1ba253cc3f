"""FederatedDataset: every kind of source, splits, resplitting, preprocessing and caching."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pandas as pd
import pytest

from fedlab.datasets import FederatedDataset, IidPartitioner, SizePartitioner, divide_split
from fedlab.errors import DatasetError
from tests.unit.datasets.offline import offline  # noqa: F401  (a fixture)
from tests.unit.datasets.partition_checks import labelled


def rows(dataset: datasets.Dataset, column: str = "x") -> list[Any]:
    return list(dataset[column][:])


def test_a_dataset_becomes_the_train_split_and_an_int_partitioner_is_iid_with_the_seed() -> None:
    fds = FederatedDataset(labelled(100), partitioners={"train": 4}, seed=9)
    assert fds.splits == ["train"] and fds.num_partitions == 4
    reference = IidPartitioner(4, seed=9)
    reference.dataset = labelled(100)
    for pid in range(4):
        assert rows(fds.load_partition(pid)) == reference.partition_indices(pid).tolist()


def test_a_dataset_dict_keeps_its_splits_and_load_split_returns_a_whole_split() -> None:
    data = datasets.DatasetDict({"train": labelled(40), "test": labelled(10)})
    fds = FederatedDataset(data, partitioners={"train": SizePartitioner([30, 10], shuffle=False)})
    assert fds.splits == ["train", "test"]
    assert len(fds.load_split("test")) == 10
    assert rows(fds.load_partition(1)) == list(range(30, 40))
    with pytest.raises(
        DatasetError, match=r"no split 'valid'; the dataset has \['train', 'test'\]"
    ):
        fds.load_split("valid")


def test_with_several_partitioned_splits_load_partition_asks_which() -> None:
    data = datasets.DatasetDict({"train": labelled(40), "test": labelled(20)})
    fds = FederatedDataset(data, partitioners={"train": 4, "test": 4})
    assert len(fds.load_partition(0, "test")) == 5
    with pytest.raises(DatasetError, match="say which, e.g. split='train'"):
        fds.load_partition(0)
    with pytest.raises(DatasetError, match="Split 'other' has no partitioner"):
        fds.load_partition(0, "other")


def test_partitioners_must_name_existing_splits() -> None:
    fds = FederatedDataset(labelled(10), partitioners={"validation": 2})
    with pytest.raises(DatasetError, match=r"lacks; it has \['train'\]"):
        fds.load_partition(0)


def test_test_size_divides_train_into_train_and_test_reproducibly() -> None:
    fds = FederatedDataset(labelled(100), partitioners={"train": 2}, test_size=0.25, seed=1)
    train, test = fds.load_split("train"), fds.load_split("test")
    assert (len(train), len(test)) == (75, 25)
    assert sorted(rows(train) + rows(test)) == list(range(100))
    again = FederatedDataset(labelled(100), partitioners={"train": 2}, test_size=0.25, seed=1)
    assert rows(again.load_split("test")) == rows(test)
    other = FederatedDataset(labelled(100), partitioners={"train": 2}, test_size=0.25, seed=2)
    assert rows(other.load_split("test")) != rows(test)
    by_rows = FederatedDataset(labelled(100), partitioners={"train": 2}, test_size=30)
    assert len(by_rows.load_split("test")) == 30


def test_test_size_refuses_a_dataset_that_already_has_a_test_split() -> None:
    data = datasets.DatasetDict({"train": labelled(10), "test": labelled(5)})
    fds = FederatedDataset(data, partitioners={"train": 2}, test_size=0.2)
    with pytest.raises(DatasetError, match="leave test_size out"):
        _ = fds.splits


def test_the_preprocessor_runs_once_before_partitioning() -> None:
    calls = []

    def keep_even(data: datasets.DatasetDict) -> datasets.DatasetDict:
        calls.append(1)
        return datasets.DatasetDict({"train": data["train"].filter(lambda r: r["x"] % 2 == 0)})

    fds = FederatedDataset(labelled(20), partitioners={"train": 2}, preprocessor=keep_even)
    assert sorted(rows(fds.load_partition(0)) + rows(fds.load_partition(1))) == list(
        range(0, 20, 2)
    )
    fds.load_partition(1)
    assert calls == [1]


def test_loading_is_lazy_and_partitions_come_from_memory_after_the_first_call() -> None:
    loads = []

    def load() -> datasets.Dataset:
        loads.append(1)
        return labelled(30)

    fds = FederatedDataset(load, partitioners={"train": 3})
    assert loads == []
    first = fds.load_partition(2)
    assert fds.load_partition(2) is first
    assert loads == [1]


def test_a_partitioner_cannot_serve_two_federated_datasets_with_different_data() -> None:
    shared = IidPartitioner(2)
    FederatedDataset(labelled(10), partitioners={"train": shared}).load_partition(0)
    with pytest.raises(DatasetError, match="new partitioner"):
        FederatedDataset(labelled(12), partitioners={"train": shared}).load_partition(0)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"partitioners": {}}, "at least one split"),
        ({"partitioners": {"train": 0}}, "positive number"),
        ({"partitioners": {"train": 2}, "test_size": 1.5}, "test_size"),
        ({"partitioners": {"train": 2}, "preprocessor": "x"}, "preprocessor"),
    ],
)
def test_bad_options_are_refused_with_what_to_pass(options: dict[str, Any], match: str) -> None:
    with pytest.raises(DatasetError, match=match):
        FederatedDataset(labelled(10), **options)


def test_something_that_is_not_a_dataset_is_refused_with_the_alternatives() -> None:
    with pytest.raises(DatasetError, match="from_pandas, from_numpy"):
        _ = FederatedDataset([1, 2, 3], partitioners={"train": 1}).splits


def test_from_pandas_takes_a_frame_or_a_dict_of_frames() -> None:
    frame = pd.DataFrame({"x": range(12), "label": [0, 1, 2] * 4}, index=range(100, 112))
    fds = FederatedDataset.from_pandas(frame, partitioners={"train": 3})
    assert fds.load_split("train").column_names == ["x", "label"]  # the index is not a column
    split = FederatedDataset.from_pandas(
        {"train": frame, "test": frame.head(3)}, partitioners={"train": 2}
    )
    assert split.splits == ["train", "test"] and len(split.load_split("test")) == 3
    with pytest.raises(DatasetError, match="DataFrame"):
        _ = FederatedDataset.from_pandas([frame], partitioners={"train": 2}).splits


def test_from_numpy_keeps_array_shapes_and_adds_an_optional_test_split() -> None:
    x = np.arange(10 * 2 * 3, dtype=np.float32).reshape(10, 2, 3)
    y = np.arange(10) % 2
    fds = FederatedDataset.from_numpy(x, y, test=(x[:4], y[:4]), partitioners={"train": 2})
    part = fds.load_partition(0).with_format("numpy")[:]
    assert part["features"].shape == (5, 2, 3) and part["features"].dtype == np.float32
    assert len(fds.load_split("test")) == 4
    with pytest.raises(DatasetError, match="one label per example"):
        _ = FederatedDataset.from_numpy(x, y[:3], partitioners={"train": 2}).splits


def write_parquet_folder(root: Path) -> None:
    (root / "train").mkdir(parents=True)
    labelled(30).to_pandas().iloc[:20].to_parquet(root / "train" / "part-0.parquet")
    labelled(30).to_pandas().iloc[20:].to_parquet(root / "train" / "part-1.parquet")
    labelled(8).to_pandas().to_parquet(root / "test-00000-of-00001.parquet")


@pytest.mark.usefixtures("offline")
def test_from_files_reads_a_local_parquet_folder_with_no_network(tmp_path: Path) -> None:
    write_parquet_folder(tmp_path)
    fds = FederatedDataset.from_files(tmp_path, partitioners={"train": 3})
    assert os.environ["HF_DATASETS_OFFLINE"] == "1"
    assert sorted(fds.splits) == ["test", "train"]
    train = fds.load_split("train")
    assert rows(train) == list(range(30)) and train.column_names == ["x", "label"]
    assert sorted(x for i in range(3) for x in rows(fds.load_partition(i))) == list(range(30))
    assert len(fds.load_split("test")) == 8


@pytest.mark.usefixtures("offline")
def test_from_files_reads_csv_and_sees_changed_files(tmp_path: Path) -> None:
    pd.DataFrame({"x": [1, 2, 3], "label": ["a", "b", "a"]}).to_csv(
        tmp_path / "train.csv", index=False
    )
    first = FederatedDataset.from_files(tmp_path, partitioners={"train": 1})
    assert rows(first.load_split("train"), "label") == ["a", "b", "a"]
    pd.DataFrame({"x": [1, 2, 3, 4], "label": list("abcd")}).to_csv(
        tmp_path / "train.csv", index=False
    )
    again = FederatedDataset.from_files(tmp_path, partitioners={"train": 1})
    assert len(again.load_split("train")) == 4


def test_from_files_explains_a_missing_or_empty_or_mixed_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="is not a folder"):
        _ = FederatedDataset.from_files(tmp_path / "nope", partitioners={"train": 1}).splits
    with pytest.raises(DatasetError, match="No .parquet or .csv files"):
        _ = FederatedDataset.from_files(tmp_path, partitioners={"train": 1}).splits
    labelled(4).to_pandas().to_parquet(tmp_path / "train.parquet")
    labelled(4).to_pandas().to_csv(tmp_path / "test.csv")
    with pytest.raises(DatasetError, match="mixes parquet and CSV"):
        _ = FederatedDataset.from_files(tmp_path, partitioners={"train": 1}).splits


@pytest.mark.usefixtures("offline")
def test_from_sklearn_digits_loads_with_no_network() -> None:
    fds = FederatedDataset.from_sklearn("digits", partitioners={"train": 10}, test_size=0.2, seed=0)
    assert os.environ["HF_DATASETS_OFFLINE"] == "1"
    assert (len(fds.load_split("train")), len(fds.load_split("test"))) == (1438, 359)
    part = fds.load_partition(3).with_format("numpy")[:]
    assert part["features"].shape == (144, 64) and part["features"].dtype == np.float32
    assert fds.load_split("train").features["label"].names == [str(d) for d in range(10)]


@pytest.mark.usefixtures("offline")
def test_from_sklearn_as_columns_gives_one_column_per_feature() -> None:
    fds = FederatedDataset.from_sklearn("iris", as_columns=True, partitioners={"train": 3})
    assert fds.load_split("train").column_names == [
        "sepal length (cm)",
        "sepal width (cm)",
        "petal length (cm)",
        "petal width (cm)",
        "label",
    ]
    assert fds.load_split("train").features["label"].names == ["setosa", "versicolor", "virginica"]


def test_from_sklearn_lists_the_bundled_datasets_for_an_unknown_name() -> None:
    with pytest.raises(DatasetError, match="breast_cancer, digits, iris, wine"):
        FederatedDataset.from_sklearn("mnist", partitioners={"train": 2})


def test_from_hub_calls_load_dataset_with_the_users_arguments_once_on_first_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def fake_load_dataset(*args: Any, **kwargs: Any) -> datasets.DatasetDict:
        calls.append((args, kwargs))
        return datasets.DatasetDict({"train": labelled(20), "test": labelled(5)})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    options = {"revision": "abc123", "data_dir": "letters", "trust_remote_code": False}
    fds = FederatedDataset.from_hub(
        "someone/handwriting", name="v2", partitioners={"train": 4}, **options
    )
    assert calls == []  # nothing is downloaded before the data is needed
    assert len(fds.load_partition(0)) == 5
    assert calls == [(("someone/handwriting",), {"name": "v2", **options})]
    again = FederatedDataset.from_hub(
        "someone/handwriting", name="v2", partitioners={"train": 2}, **options
    )
    assert len(again.load_partition(0)) == 10 and len(calls) == 1  # the in-process cache
    assert repr(fds).startswith("FederatedDataset(hub:someone/handwriting/v2")


def test_from_hub_with_a_split_wraps_the_dataset_under_that_split(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(datasets, "load_dataset", lambda path, **kw: labelled(12))
    fds = FederatedDataset.from_hub(
        "someone/one-split", split="validation", partitioners={"validation": 3}
    )
    assert fds.splits == ["validation"] and len(fds.load_partition(2)) == 4


def test_from_hub_refuses_streaming_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "load_dataset", lambda path, **kw: datasets.IterableDatasetDict())
    fds = FederatedDataset.from_hub("someone/streamed", streaming=True, partitioners={"train": 2})
    with pytest.raises(DatasetError, match="streaming"):
        fds.load_partition(0)


def test_divide_split_as_a_preprocessor_stratifies_the_test_split() -> None:
    fds = FederatedDataset(
        labelled(100, 4),
        partitioners={"train": 2},
        preprocessor=divide_split(
            "train", {"train": 0.8, "test": 0.2}, stratify_by="label", seed=0
        ),
    )
    test_labels = rows(fds.load_split("test"), "label")
    assert [test_labels.count(c) for c in range(4)] == [5, 5, 5, 5]
