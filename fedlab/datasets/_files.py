"""Reading a folder of parquet or CSV files into a ``DatasetDict``, with pyarrow, in memory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedlab.datasets._hf import hf
from fedlab.errors import DatasetError

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

__all__ = ["files_key", "read_files", "read_parquet", "split_files"]

_SUFFIXES = {".parquet": "parquet", ".csv": "csv"}


def split_files(folder: str | os.PathLike[str]) -> dict[str, list[Path]]:
    """Group the parquet/CSV files under ``folder`` by split name.

    A file in a subfolder belongs to the split named after that subfolder
    (``train/part-0.parquet``); a file at the top belongs to the split named by its stem
    up to the first ``-`` (``train.csv``, ``test-00000-of-00002.parquet``).
    """
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(
            f"{str(root)!r} is not a folder; give a folder of .parquet or .csv files."
        )
    found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in _SUFFIXES)
    if not found:
        raise DatasetError(f"No .parquet or .csv files under {str(root)!r}.")
    kinds = {p.suffix.lower() for p in found}
    if len(kinds) > 1:
        raise DatasetError(
            f"{str(root)!r} mixes parquet and CSV files; keep one format per folder (found {sorted(kinds)})."
        )
    splits: dict[str, list[Path]] = {}
    for path in found:
        relative = path.relative_to(root)
        split = relative.parts[0] if len(relative.parts) > 1 else path.stem.split("-")[0]
        splits.setdefault(split, []).append(path)
    return splits


def files_key(splits: dict[str, list[Path]]) -> tuple[Any, ...]:
    """A cache key that changes when any file is replaced or modified."""
    return tuple(
        (split, str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size)
        for split, paths in sorted(splits.items())
        for p in paths
    )


def read_files(splits: dict[str, list[Path]]) -> DatasetDict:
    """Read the grouped files into one ``Dataset`` per split."""
    import pyarrow as pa

    datasets = hf()
    out = {}
    for split, paths in splits.items():
        tables = [_read_table(p) for p in paths]
        try:
            table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        except pa.ArrowInvalid as exc:
            raise DatasetError(
                f"The files of split {split!r} do not share one schema ({exc}); give every file of a "
                "split the same columns and types."
            ) from None
        out[split] = datasets.Dataset(table)
    return datasets.DatasetDict(out)


def read_parquet(path: str | os.PathLike[str]) -> Dataset:
    """Read one parquet file into a ``Dataset``."""
    return hf().Dataset(_read_table(Path(path)))


def _read_table(path: Path) -> Any:
    import pyarrow as pa
    import pyarrow.csv
    import pyarrow.parquet

    try:
        if path.suffix.lower() == ".csv":
            return pyarrow.csv.read_csv(path)
        return pyarrow.parquet.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DatasetError(f"Could not read {str(path)!r}: {exc}") from None
