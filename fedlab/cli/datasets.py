"""``fedlab datasets``: write the partitions of a dataset to disk, for SuperNodes to load.

Each partition ``i`` of each partitioned split goes to ``OUT/partition-i/<split>.parquet``;
a SuperNode started with the node config ``partition-path=OUT/partition-i`` then gets it
with ``fedlab.datasets.load_partition(ctx, split)``. Splits asked for with ``--whole``
(by default the test split, when it is not partitioned) go to ``OUT/<split>.parquet``
unpartitioned, e.g. for the server's evaluation. ``OUT/manifest.json`` records the
source, the partitioner, the seed, the partition sizes and the whole splits.
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

__all__ = ["PARTITIONERS", "build_partitioner", "main", "write_partitions", "write_whole"]

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
    from fedlab.datasets import write_partition

    count = max(fds.partitioner(split).num_partitions for split in fds.partitioners)
    sizes: dict[str, list[int]] = {split: [] for split in fds.partitioners}
    for pid in range(count):
        for split, rows in write_partition(fds, pid, out / f"partition-{pid}").items():
            sizes[split].append(rows)
    return sizes


def write_whole(fds: Any, splits: Sequence[str], out: Path) -> dict[str, int]:
    """Write each of ``splits`` of ``fds`` unpartitioned to ``out/<split>.parquet``; return rows."""
    from fedlab.datasets.write import write_split

    return {split: write_split(fds.load_split(split), out / f"{split}.parquet") for split in splits}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``fedlab datasets``; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except FedlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from fedlab.datasets import SKLEARN_DATASETS, FederatedDataset

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
        for split in _whole_splits_written(out / "manifest.json"):
            (out / f"{split}.parquet").unlink(missing_ok=True)
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
    whole = args.whole
    if whole is None:  # by default the test split, when no partitioner takes it
        whole = ["test"] if "test" in fds.splits and "test" not in fds.partitioners else []
    for split in whole:  # checked before anything is written
        fds.load_split(split)
    sizes = write_partitions(fds, out)
    whole_rows = write_whole(fds, whole, out)
    manifest = {
        "source": fds.source,
        "partitioner": args.partitioner,
        "options": {
            k: getattr(args, k) for k in ("num_partitions", *PARTITIONERS[args.partitioner])
        },
        "seed": args.seed,
        "test_size": args.test_size,
        "partition_sizes": sizes,
        "whole_splits": whole_rows,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    for split, counts in sizes.items():
        print(
            f"wrote {len(counts)} partitions of {split!r} ({sum(counts)} rows, "
            f"{min(counts)} to {max(counts)} per partition) to {out}/partition-*/{split}.parquet"
        )
    for split, rows in whole_rows.items():
        print(f"wrote {split!r} whole ({rows} rows) to {out / f'{split}.parquet'}")
    return 0


def _whole_splits_written(manifest: Path) -> list[str]:
    try:
        written = json.loads(manifest.read_text()).get("whole_splits", {})
    except (OSError, ValueError, AttributeError):
        return []
    # Split names come from our own manifest; anything else is not a file we wrote.
    return [s for s in written if isinstance(s, str) and "/" not in s and not s.startswith(".")]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedlab datasets",
        description="Write the partitions of a dataset to disk as parquet, one folder per partition.",
        epilog="A SuperNode given node config partition-path=OUT/partition-3 loads its partition "
        "with fedlab.datasets.load_partition(ctx, 'train'); a whole split such as OUT/test.parquet "
        "loads with datasets.Dataset.from_parquet('OUT/test.parquet').",
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
        "--whole",
        action="append",
        metavar="SPLIT",
        help="also write SPLIT unpartitioned to OUT/SPLIT.parquet, e.g. a test set for the "
        "server's evaluation (repeatable; default: the test split when it is not partitioned, "
        "as --test-size makes it)",
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
