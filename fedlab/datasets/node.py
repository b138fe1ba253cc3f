"""A node's own partition, found from its Context, in simulation and in deployment alike."""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from fedlab.context import Context, UserConfig
from fedlab.datasets import _files
from fedlab.datasets._cache import cached
from fedlab.errors import DatasetError, FederationError

if TYPE_CHECKING:
    from datasets import Dataset

    from fedlab.datasets.federated_dataset import FederatedDataset

__all__ = ["DATASET_KEY", "PARTITION_PATH", "attach", "load_partition", "lookup"]

#: The run_config key under which a simulation names its in-process FederatedDataset.
DATASET_KEY = "fedlab-dataset"
#: The node_config key of a deployed node's own partition: a parquet file or a folder of them.
PARTITION_PATH = "partition-path"

_registry: weakref.WeakValueDictionary[str, FederatedDataset] = weakref.WeakValueDictionary()
_keys: weakref.WeakKeyDictionary[FederatedDataset, str] = weakref.WeakKeyDictionary()
_counter = itertools.count(1)
_lock = threading.Lock()


def attach(dataset: FederatedDataset, num_clients: int | None) -> tuple[int, UserConfig]:
    """Register ``dataset`` for a simulation; return its number of clients and run_config entry.

    The number of clients defaults to the dataset's number of partitions; an explicit one
    may be smaller (the other partitions go unused) but not larger. The run_config entry
    lets :func:`load_partition` find the dataset from any node's Context in this process.
    """
    from fedlab.datasets.federated_dataset import FederatedDataset

    if not isinstance(dataset, FederatedDataset):
        raise FederationError(
            f"dataset must be a fedlab.datasets.FederatedDataset, got {type(dataset).__name__}."
        )
    counts = {split: dataset.partitioner(split).num_partitions for split in dataset.partitioners}
    partitions = min(counts.values())
    if num_clients is None:
        if len(set(counts.values())) > 1:
            raise FederationError(
                f"The dataset's partitioned splits have different numbers of partitions ({counts}); "
                "give num_clients explicitly."
            )
        num_clients = partitions
    elif isinstance(num_clients, int) and num_clients > partitions:
        raise FederationError(
            f"num_clients={num_clients} but the dataset has only {partitions} partitions; leave "
            "num_clients out to get one client per partition, or partition into more."
        )
    return num_clients, {DATASET_KEY: register(dataset)}


def register(dataset: FederatedDataset) -> str:
    """Make ``dataset`` findable in this process; return its key (stable for the object)."""
    with _lock:
        key = _keys.get(dataset)
        if key is None:
            key = f"fds-{next(_counter)}"
            _keys[dataset] = key
            _registry[key] = dataset
        return key


def lookup(key: str) -> FederatedDataset:
    """Return the dataset registered under ``key`` in this process."""
    found = _registry.get(key)
    if found is None:
        raise DatasetError(
            f"No FederatedDataset {key!r} is registered in this process. In-process datasets reach "
            "only clients in the process of their Federation; for clients elsewhere, write the "
            f"partitions with `fedlab datasets` and give each node a {PARTITION_PATH!r} node config."
        )
    return found


def load_partition(context: Context, split: str | None = None) -> Dataset:
    """Return this node's partition of ``split``: one call from a ClientApp's Context.

    In deployment, a SuperNode's ``node_config["partition-path"]`` names a parquet file
    (its partition) or a folder holding ``<split>.parquet`` files, as written by
    ``fedlab datasets``. In simulation, a Federation given ``dataset=...`` puts the
    dataset's key in the run_config, and the node's ``partition-id`` picks the partition.
    A ``partition-path`` wins when both are present. Either way the data is kept in
    memory after the first call.

    Examples
    --------
    >>> import datasets, fedlab
    >>> from fedlab.datasets import FederatedDataset, attach, load_partition
    >>> fds = FederatedDataset(datasets.Dataset.from_dict({"x": list(range(6))}), partitioners={"train": 3})
    >>> num_clients, run_config = attach(fds, None)
    >>> ctx = fedlab.Context(run_id=1, node_id=7, node_config={"partition-id": 2}, run_config=run_config)
    >>> len(load_partition(ctx)), num_clients
    (2, 3)
    """
    path = context.node_config.get(PARTITION_PATH)
    if path is not None:
        return _read_partition(str(path), split)
    key = context.run_config.get(DATASET_KEY)
    if key is None:
        raise DatasetError(
            "This node's Context names no dataset: give the Federation dataset=FederatedDataset(...) "
            f"in simulation, or the SuperNode a node config {PARTITION_PATH}=<parquet written by "
            "`fedlab datasets`> in deployment."
        )
    partition_id = context.node_config.get("partition-id")
    if not isinstance(partition_id, int) or isinstance(partition_id, bool):
        raise DatasetError(f"node_config['partition-id'] must be an int, got {partition_id!r}.")
    return lookup(str(key)).load_partition(partition_id, split)


def _read_partition(path: str, split: str | None) -> Dataset:
    location = Path(os.path.expanduser(path))
    if location.is_dir():
        files = sorted(location.glob("*.parquet"))
        wanted = [f for f in files if f.stem == split] if split is not None else files
        if len(wanted) != 1:
            names = [f.stem for f in files]
            hint = (
                f"ask for one of the splits {names}" if names else "write it with `fedlab datasets`"
            )
            raise DatasetError(
                f"{PARTITION_PATH} {path!r} is a folder with splits {names}; "
                f"{'it has no split ' + repr(split) if split is not None else 'say which split'}: {hint}."
            )
        location = wanted[0]
    elif not location.is_file():
        raise DatasetError(
            f"{PARTITION_PATH} {path!r} does not exist; point it at a partition written by `fedlab datasets`."
        )
    stat = location.stat()
    return cached(
        ("partition-file", str(location.resolve()), stat.st_mtime_ns, stat.st_size),
        lambda: _files.read_parquet(location),
    )
