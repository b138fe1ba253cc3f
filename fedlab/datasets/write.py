"""Writing a node's partition to parquet, in the layout :func:`load_partition` reads.

A node's folder holds one ``<split>.parquet`` per partitioned split; a SuperNode whose
node config has ``partition-path=<that folder>`` loads it with
:func:`fedlab.datasets.load_partition`. ``fedlab datasets`` and ``Federation.deploy(local=N)``
write their partitions this way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedlab.datasets.federated_dataset import FederatedDataset

__all__ = ["write_partition", "write_split"]


def write_partition(
    fds: FederatedDataset, partition_id: int, folder: str | os.PathLike[str]
) -> dict[str, int]:
    """Write partition ``partition_id`` of each partitioned split to ``folder/<split>.parquet``.

    Parameters
    ----------
    fds
        The federated dataset.
    partition_id
        Which partition; a split with fewer partitions is skipped.
    folder
        The node's folder (created if missing); give it to the node as ``partition-path``.

    Returns
    -------
    dict[str, int]
        The number of rows written, by split.

    Examples
    --------
    >>> import datasets, tempfile, fedlab
    >>> from fedlab.datasets import FederatedDataset, load_partition, write_partition
    >>> fds = FederatedDataset(datasets.Dataset.from_dict({"x": list(range(6))}), partitioners={"train": 3})
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     rows = write_partition(fds, 2, folder)
    ...     node = fedlab.Context(run_id=1, node_id=7, node_config={"partition-path": folder})
    ...     same = load_partition(node, "train")["x"][:] == fds.load_partition(2)["x"][:]
    >>> rows, same
    ({'train': 2}, True)
    """
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = {}
    for split in fds.partitioners:
        if partition_id >= fds.partitioner(split).num_partitions:
            continue
        rows[split] = write_split(
            fds.load_partition(partition_id, split), target / f"{split}.parquet"
        )
    return rows


def write_split(dataset: Any, path: Path) -> int:
    """Write a ``datasets.Dataset`` to the parquet file ``path``; return its number of rows."""
    import pyarrow.parquet as pq

    from fedlab.datasets._hf import to_table

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(to_table(dataset), path)
    return len(dataset)
