"""Preprocessors: functions that reshape a ``DatasetDict`` before it is partitioned."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fedlab.datasets._hf import column, hf, require_column
from fedlab.datasets.partitioner._checks import check_seed, labels_of
from fedlab.datasets.partitioner._sizes import proportional_sizes
from fedlab.errors import DatasetError

if TYPE_CHECKING:
    from datasets import DatasetDict

__all__ = ["Preprocessor", "divide_split", "merge_splits"]

#: Takes the loaded splits and returns the splits to partition (e.g. new train/test).
Preprocessor = Callable[["DatasetDict"], "DatasetDict"]


def divide_split(
    split: str,
    parts: Mapping[str, float | int],
    *,
    seed: int = 42,
    stratify_by: str | None = None,
) -> Preprocessor:
    """A preprocessor that divides ``split`` into new splits of the given sizes.

    ``parts`` maps each new split to a fraction of the rows (fractions adding up to at
    most 1) or to a number of rows. Rows are drawn at random with ``seed``; with
    ``stratify_by`` every class is divided in the same proportions (row counts are then
    met to within rounding). The old split is
    replaced (it survives only if one of the new names is the same); other splits are kept.

    Examples
    --------
    >>> import datasets
    >>> data = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"x": list(range(10))})})
    >>> divided = divide_split("train", {"train": 0.8, "test": 0.2})(data)
    >>> {name: len(rows) for name, rows in divided.items()}
    {'train': 8, 'test': 2}
    """
    check_seed(seed)
    if not parts:
        raise DatasetError(
            "divide_split needs at least one new split, e.g. {'train': 0.8, 'test': 0.2}."
        )
    fractions = [v for v in parts.values() if isinstance(v, float)]
    counts = [v for v in parts.values() if isinstance(v, int) and not isinstance(v, bool)]
    if (
        len(fractions) + len(counts) != len(parts)
        or (fractions and counts)
        or any(v < 0 for v in parts.values())
    ):
        raise DatasetError(
            f"divide_split sizes must be all fractions or all row counts (non-negative), got {dict(parts)}."
        )
    if fractions and sum(fractions) > 1 + 1e-9:
        raise DatasetError(
            f"divide_split fractions add up to {sum(fractions)}, more than 1: {dict(parts)}."
        )

    def divide(data: DatasetDict) -> DatasetDict:
        if split not in data:
            raise DatasetError(f"Cannot divide split {split!r}: the dataset has only {list(data)}.")
        source = data[split]
        n = len(source)
        rng = np.random.default_rng(seed)
        groups = [np.arange(n)]
        if stratify_by is not None:
            require_column(source, stratify_by, "divide_split(stratify_by=...)")
            _, codes = labels_of(column(source, stratify_by))
            groups = [np.flatnonzero(codes == c) for c in range(int(codes.max()) + 1 if n else 0)]
        requested = list(parts.values())
        if counts and sum(counts) > n:
            raise DatasetError(
                f"divide_split asks for {sum(counts)} rows but split {split!r} has {n}."
            )
        chosen: list[list[Any]] = [[] for _ in parts]
        for rows in groups:
            sizes = _sizes(len(rows), requested, n)
            order = rng.permutation(rows)
            start = 0
            for i, size in enumerate(sizes):
                chosen[i].append(order[start : start + size])
                start += size
        out = {name: rows for name, rows in data.items() if name != split}
        for name, pieces in zip(parts, chosen, strict=True):
            out[name] = source.select(np.sort(np.concatenate(pieces)) if pieces else [])
        return hf().DatasetDict(out)

    return divide


def merge_splits(merges: Mapping[str, Sequence[str]]) -> Preprocessor:
    """A preprocessor that concatenates splits into new ones, e.g. ``{"all": ["train", "test"]}``.

    The merged splits are removed unless a new split has the same name; others are kept.

    Examples
    --------
    >>> import datasets
    >>> data = datasets.DatasetDict({s: datasets.Dataset.from_dict({"x": [1, 2]}) for s in ("a", "b")})
    >>> {name: len(rows) for name, rows in merge_splits({"all": ["a", "b"]})(data).items()}
    {'all': 4}
    """
    if not merges or any(isinstance(v, str) or not v for v in merges.values()):
        raise DatasetError(
            f"merge_splits needs new split names mapped to lists of splits, got {dict(merges)!r}."
        )

    def merge(data: DatasetDict) -> DatasetDict:
        missing = sorted({s for sources in merges.values() for s in sources if s not in data})
        if missing:
            raise DatasetError(f"Cannot merge splits {missing}: the dataset has only {list(data)}.")
        used = {s for sources in merges.values() for s in sources}
        out = {name: rows for name, rows in data.items() if name not in used}
        for name, sources in merges.items():
            out[name] = hf().concatenate_datasets([data[s] for s in sources])
        return hf().DatasetDict(out)

    return merge


def _sizes(rows: int, requested: list[float | int], total: int) -> list[int]:
    if rows == total and all(isinstance(v, int) for v in requested):
        return [int(v) for v in requested]
    # Fractions, or row counts stratified by class: each class is divided in proportion.
    fractions = [float(v) if isinstance(v, float) else v / total for v in requested]
    if sum(fractions) <= 0:
        return [0] * len(requested)
    kept = min(rows, round(rows * sum(fractions)))
    return [int(s) for s in proportional_sizes(kept, fractions)]
