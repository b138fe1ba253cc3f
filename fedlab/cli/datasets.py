"""``fedlab datasets``: write the partitions of a dataset to disk, for SuperNodes to load.

Each partition ``i`` of each partitioned split goes to ``OUT/partition-i/<split>.parquet``;
a SuperNode started with the node config ``partition-path=OUT/partition-i`` then gets it
with ``fedlab.datasets.load_partition(ctx, split)``. ``OUT/manifest.json`` records the
source, the partitioner, the seed and the partition sizes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fedlab.errors import DatasetError, FedlabError

__all__ = ["PARTITIONERS", "build_partitioner", "main", "write_partitions"]

#: The partitioners the command offers, with the options each one uses.
PARTITIONERS = {
    "iid": (),
    "dirichlet": ("partition_by", "alpha", "min_partition_size", "self_balancing"),
    "pathological": ("partition_by", "classes_per_partition"),
    "shard": ("partition_by", "shards_per_partition"),
    "linear": (),
    "square": (),
    "exponential": (),
    "natural-id": ("partition_by",),
    "continuous": ("partition_by", "strictness"),
}


def build_partitioner(args: argparse.Namespace) -> Any:
    """Build the partitioner the command line asks for."""
    from fedlab import datasets as fd

    name, k, seed, by = args.partitioner, args.num_partitions, args.seed, args.partition_by
    if name == "iid":
        return fd.IidPartitioner(k, seed=seed)
    if name == "dirichlet":
        return fd.DirichletPartitioner(
            k,
            by,
            args.alpha,
            min_partition_size=args.min_partition_size,
            self_balancing=args.self_balancing,
            seed=seed,
        )
    if name == "pathological":
        return fd.PathologicalPartitioner(k, by, args.classes_per_partition, seed=seed)
    if name == "shard":
        return fd.ShardPartitioner(
            k, by, num_shards_per_partition=args.shards_per_partition, seed=seed
        )
    if name == "natural-id":
        return fd.NaturalIdPartitioner(by)
    if name == "continuous":
        return fd.ContinuousPartitioner(k, by, args.strictness, seed=seed)
    sized = {
        "linear": fd.LinearPartitioner,
        "square": fd.SquarePartitioner,
        "exponential": fd.ExponentialPartitioner,
    }
    return sized[name](k, seed=seed)


def write_partitions(fds: Any, out: Path) -> dict[str, list[int]]:
    """Write every partition of every partitioned split of ``fds`` under ``out``; return sizes."""
    import pyarrow.parquet as pq

    from fedlab.datasets._hf import to_table

    sizes: dict[str, list[int]] = {}
    for split in fds.partitioners:
        count = fds.partitioner(split).num_partitions
        sizes[split] = []
        for pid in range(count):
            part = fds.load_partition(pid, split)
            folder = out / f"partition-{pid}"
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(to_table(part), folder / f"{split}.parquet")
            sizes[split].append(len(part))
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``fedlab datasets``; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except FedlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from fedlab.datasets import FederatedDataset
    from fedlab.datasets._sources import SKLEARN_DATASETS

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        if not args.overwrite or not (out / "manifest.json").is_file():
            raise DatasetError(
                f"{str(out)!r} is not empty; pick a new folder, or pass --overwrite to replace "
                "partitions this command wrote there before."
            )
        # Only what this command writes is removed, never anything else in the folder.
        for old in out.glob("partition-*"):
            shutil.rmtree(old)
        (out / "manifest.json").unlink()
    kind = args.source_kind
    if kind == "auto":
        kind = (
            "files"
            if Path(args.source).is_dir()
            else "sklearn"
            if args.source in SKLEARN_DATASETS
            else "hub"
        )
    options: dict[str, Any] = {
        "partitioners": {split: build_partitioner(args) for split in args.split or ["train"]},
        "test_size": args.test_size,
        "seed": args.seed,
    }
    if kind == "files":
        fds = FederatedDataset.from_files(args.source, **options)
    elif kind == "sklearn":
        fds = FederatedDataset.from_sklearn(args.source, **options)
    else:
        fds = FederatedDataset.from_hub(args.source, name=args.subset, **options)
    sizes = write_partitions(fds, out)
    manifest = {
        "source": fds.source,
        "partitioner": args.partitioner,
        "options": {
            k: getattr(args, k) for k in ("num_partitions", *PARTITIONERS[args.partitioner])
        },
        "seed": args.seed,
        "test_size": args.test_size,
        "partition_sizes": sizes,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    for split, counts in sizes.items():
        print(
            f"wrote {len(counts)} partitions of {split!r} ({sum(counts)} rows, "
            f"{min(counts)} to {max(counts)} per partition) to {out}/partition-*/{split}.parquet"
        )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedlab datasets",
        description="Write the partitions of a dataset to disk as parquet, one folder per partition.",
        epilog="A SuperNode given node config partition-path=OUT/partition-3 loads its partition "
        "with fedlab.datasets.load_partition(ctx, 'train').",
    )
    parser.add_argument(
        "source",
        help="a folder of parquet/CSV files, a scikit-learn dataset "
        "(digits, iris, wine, breast_cancer) or a Hugging Face Hub dataset name",
    )
    parser.add_argument(
        "--out", required=True, help="folder to write partition-<i>/<split>.parquet into"
    )
    parser.add_argument(
        "--from",
        dest="source_kind",
        choices=["auto", "files", "sklearn", "hub"],
        default="auto",
        help="how to read SOURCE (default: a folder if it exists, else a scikit-learn "
        "name, else the Hub)",
    )
    parser.add_argument("--subset", help="Hub dataset configuration (subset) name")
    parser.add_argument(
        "--split", action="append", help="split to partition (repeatable; default train)"
    )
    parser.add_argument("--partitioner", choices=sorted(PARTITIONERS), default="iid")
    parser.add_argument(
        "--num-partitions", type=int, default=10, help="number of partitions (default 10)"
    )
    parser.add_argument(
        "--partition-by", default="label", help="label or id column (default label)"
    )
    parser.add_argument(
        "--alpha", type=float, default=0.5, help="Dirichlet concentration (default 0.5)"
    )
    parser.add_argument(
        "--min-partition-size", type=int, default=10, help="Dirichlet: fewest rows (default 10)"
    )
    parser.add_argument(
        "--self-balancing", action="store_true", help="Dirichlet: keep sizes closer"
    )
    parser.add_argument(
        "--classes-per-partition", type=int, default=2, help="pathological: classes (default 2)"
    )
    parser.add_argument(
        "--shards-per-partition", type=int, default=2, help="shard: shards (default 2)"
    )
    parser.add_argument(
        "--strictness", type=float, default=0.5, help="continuous: 0 (IID) to 1 (sorted)"
    )
    parser.add_argument(
        "--test-size", type=_size, help="first divide train into train and test (fraction or rows)"
    )
    parser.add_argument(
        "--seed", type=int, default=42, help="seed of the partitioner and the test split"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the contents of a non-empty --out"
    )
    return parser


def _size(text: str) -> float | int:
    try:
        return int(text)
    except ValueError:
        return float(text)


if __name__ == "__main__":
    sys.exit(main())
