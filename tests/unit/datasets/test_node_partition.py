"""load_partition(ctx): a node's partition from the run_config in simulation, from a path when deployed."""

from __future__ import annotations

import gc
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fedlab.context import Context
from fedlab.datasets import DATASET_KEY, PARTITION_PATH, FederatedDataset, attach, load_partition
from fedlab.datasets._hf import to_table
from fedlab.datasets.node import lookup, register
from fedlab.errors import DatasetError, FederationError
from tests.unit.datasets.partition_checks import labelled


def context(
    node_config: dict[str, object] | None = None, run_config: dict[str, object] | None = None
) -> Context:
    return Context(
        run_id=1,
        node_id=99,
        node_config=dict(node_config or {}),  # type: ignore[arg-type]
        run_config=dict(run_config or {}),
    )  # type: ignore[arg-type]


def test_attach_defaults_num_clients_to_the_partitions_and_names_the_dataset_in_run_config() -> (
    None
):
    fds = FederatedDataset(labelled(60), partitioners={"train": 6})
    num_clients, run_config = attach(fds, None)
    assert num_clients == 6 and run_config == {DATASET_KEY: register(fds)}
    ctx = context({"partition-id": 4}, run_config)
    assert load_partition(ctx) is fds.load_partition(4)
    assert list(load_partition(ctx, "train")["x"][:]) == list(fds.load_partition(4)["x"][:])


def test_attach_accepts_fewer_clients_than_partitions_but_not_more() -> None:
    fds = FederatedDataset(labelled(60), partitioners={"train": 6})
    assert attach(fds, 4)[0] == 4
    with pytest.raises(FederationError, match="only 6 partitions"):
        attach(fds, 7)


def test_attach_asks_for_num_clients_when_splits_disagree() -> None:
    import datasets

    data = datasets.DatasetDict({"train": labelled(60), "test": labelled(20)})
    fds = FederatedDataset(data, partitioners={"train": 6, "test": 2})
    with pytest.raises(FederationError, match="give num_clients"):
        attach(fds, None)
    assert attach(fds, 2)[0] == 2


def test_a_dataset_keeps_one_key_and_leaves_the_registry_when_no_one_holds_it() -> None:
    fds = FederatedDataset(labelled(10), partitioners={"train": 2})
    key = register(fds)
    assert register(fds) == key and lookup(key) is fds
    del fds
    gc.collect()
    with pytest.raises(DatasetError, match="fedlab datasets"):
        lookup(key)


def test_a_partition_path_to_a_parquet_file_is_read_and_cached(tmp_path: Path) -> None:
    path = tmp_path / "mine.parquet"
    pq.write_table(to_table(labelled(7)), path)
    ctx = context({PARTITION_PATH: str(path)})
    first = load_partition(ctx)
    assert list(first["x"][:]) == list(range(7))
    assert load_partition(ctx) is first


def test_a_partition_path_to_a_folder_picks_the_split_file(tmp_path: Path) -> None:
    pq.write_table(to_table(labelled(5)), tmp_path / "train.parquet")
    pq.write_table(to_table(labelled(2)), tmp_path / "test.parquet")
    fds = FederatedDataset(labelled(10), partitioners={"train": 2})
    # The path wins over an in-process dataset: a node's own data is explicit.
    ctx = context({PARTITION_PATH: str(tmp_path), "partition-id": 0}, attach(fds, None)[1])
    assert len(load_partition(ctx, "train")) == 5 and len(load_partition(ctx, "test")) == 2
    with pytest.raises(
        DatasetError, match=r"say which split: ask for one of the splits \['test', 'train'\]"
    ):
        load_partition(ctx)
    with pytest.raises(DatasetError, match="it has no split 'valid'"):
        load_partition(ctx, "valid")


def test_without_a_dataset_or_a_path_the_error_says_how_to_give_one(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset=FederatedDataset"):
        load_partition(context({"partition-id": 0}))
    with pytest.raises(DatasetError, match="does not exist"):
        load_partition(context({PARTITION_PATH: str(tmp_path / "nope.parquet")}))
    with pytest.raises(DatasetError, match="is registered in this process"):
        load_partition(context({"partition-id": 0}, {DATASET_KEY: "fds-unknown"}))
