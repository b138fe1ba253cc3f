"""`FederatedDataset`: a dataset's splits, each divided among clients by a partitioner."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from fedlab.datasets import _files, _sources
from fedlab.datasets._cache import cached
from fedlab.datasets._prepare import check_test_size, partitioned_split, partitioner_for, prepare
from fedlab.datasets.partitioner import Partitioner
from fedlab.datasets.preprocessor import Preprocessor
from fedlab.errors import DatasetError

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

__all__ = ["FederatedDataset"]

#: What FederatedDataset's constructor accepts: loaded data, or a function loading it.
Source = Any


class FederatedDataset:
    """A dataset whose splits are divided among the clients of a federation.

    Built on Hugging Face ``datasets`` (imported on first use). Build one from a
    ``datasets.Dataset`` or ``DatasetDict`` with the constructor, or from elsewhere with
    :meth:`from_hub`, :meth:`from_pandas`, :meth:`from_numpy`, :meth:`from_files` or
    :meth:`from_sklearn`. Data is loaded on first use, then preprocessed (``preprocessor``,
    then ``test_size``) once; partitions are computed once and kept, so simulated clients
    asking for their partition every round get it from memory.

    Parameters
    ----------
    data
        A ``datasets.Dataset`` (taken as the ``train`` split unless it names its split), a
        ``datasets.DatasetDict``, or a function returning either, called on first use.
    partitioners
        Which splits to partition and how: split name to a :class:`Partitioner`, or to a
        number of partitions for an :class:`IidPartitioner` seeded with ``seed``.
    preprocessor
        A function from ``DatasetDict`` to ``DatasetDict`` applied once after loading,
        e.g. :func:`~fedlab.datasets.divide_split` or :func:`~fedlab.datasets.merge_splits`.
    test_size
        Divide ``train`` into a new ``train`` and a ``test`` split of this fraction (or
        number of rows), at random with ``seed``.
    seed
        Seed of ``test_size`` and of the partitioners given as numbers.

    Examples
    --------
    >>> import datasets
    >>> data = datasets.Dataset.from_dict({"x": list(range(100)), "label": [0, 1] * 50})
    >>> fds = FederatedDataset(data, partitioners={"train": 4}, test_size=0.2, seed=0)
    >>> fds.splits, fds.num_partitions
    (['train', 'test'], 4)
    >>> [len(fds.load_partition(i)) for i in range(4)], len(fds.load_split("test"))
    ([20, 20, 20, 20], 20)
    """

    def __init__(
        self,
        data: Source,
        *,
        partitioners: Mapping[str, Partitioner | int],
        preprocessor: Preprocessor | None = None,
        test_size: float | None = None,
        seed: int = 42,
    ) -> None:
        if not isinstance(partitioners, Mapping) or not partitioners:
            raise DatasetError(
                "partitioners must name at least one split to partition, e.g. partitioners={'train': 10}."
            )
        self.seed = seed
        self.partitioners: dict[str, Partitioner] = {
            str(split): partitioner_for(split, p, seed) for split, p in partitioners.items()
        }
        if preprocessor is not None and not callable(preprocessor):
            raise DatasetError(
                f"preprocessor must be a function of a DatasetDict, got {preprocessor!r}."
            )
        self.preprocessor = preprocessor
        check_test_size(test_size)
        self.test_size = test_size
        #: Where the data comes from, for messages and manifests.
        self.source = "in-memory data"
        self._load_data: Callable[[], Any] = data if callable(data) else (lambda: data)
        self._data: DatasetDict | None = None
        self._partitions: dict[tuple[str, int], Dataset] = {}
        self._bound: set[str] = set()
        self._lock = threading.RLock()  # partitioner() loads the data under the same lock

    # -- alternative constructors ------------------------------------------------------------

    @classmethod
    def from_hub(
        cls,
        path: str,
        *,
        partitioners: Mapping[str, Partitioner | int],
        name: str | None = None,
        preprocessor: Preprocessor | None = None,
        test_size: float | None = None,
        seed: int = 42,
        **load_dataset_kwargs: Any,
    ) -> FederatedDataset:
        """A dataset from the Hugging Face Hub (or a local path ``load_dataset`` understands).

        ``path``, ``name`` (the subset, or configuration) and ``load_dataset_kwargs`` (e.g.
        ``revision``, ``data_dir``, ``split``, ``cache_dir``) go to ``datasets.load_dataset``
        as given, on first use. Offline, ``HF_DATASETS_OFFLINE=1`` makes it read the local
        Hugging Face cache only.
        """
        key = ("hub", path, name, repr(sorted(load_dataset_kwargs.items())))
        return cls._lazy(
            f"hub:{path}" + (f"/{name}" if name else ""),
            lambda: cached(key, lambda: _sources.from_hub(path, name, load_dataset_kwargs)),
            partitioners,
            preprocessor,
            test_size,
            seed,
        )

    @classmethod
    def from_pandas(
        cls,
        frames: Any,
        *,
        partitioners: Mapping[str, Partitioner | int],
        preprocessor: Preprocessor | None = None,
        test_size: float | None = None,
        seed: int = 42,
    ) -> FederatedDataset:
        """A pandas DataFrame (the ``train`` split), or a dict of split name to DataFrame."""
        return cls._lazy(
            "pandas",
            lambda: _sources.from_pandas(frames),
            partitioners,
            preprocessor,
            test_size,
            seed,
        )

    @classmethod
    def from_numpy(
        cls,
        x: Any,
        y: Any = None,
        *,
        partitioners: Mapping[str, Partitioner | int],
        test: tuple[Any, Any] | None = None,
        feature_column: str = "features",
        label_column: str = "label",
        preprocessor: Preprocessor | None = None,
        test_size: float | None = None,
        seed: int = 42,
    ) -> FederatedDataset:
        """Arrays: features ``x`` (one row per example, any shape) and labels ``y``.

        They become the ``train`` split, with columns ``feature_column`` and
        ``label_column``; ``test=(x_test, y_test)`` adds a ``test`` split.
        """
        return cls._lazy(
            "numpy",
            lambda: _sources.from_numpy(x, y, test, feature_column, label_column),
            partitioners,
            preprocessor,
            test_size,
            seed,
        )

    @classmethod
    def from_files(
        cls,
        folder: str | os.PathLike[str],
        *,
        partitioners: Mapping[str, Partitioner | int],
        preprocessor: Preprocessor | None = None,
        test_size: float | None = None,
        seed: int = 42,
    ) -> FederatedDataset:
        """A folder of parquet or CSV files, read locally with pyarrow (no network, no HF cache).

        A file's split is its subfolder (``train/part-0.parquet``) or, at the top level, its
        name up to the first ``-`` (``train.csv``, ``test-00000-of-00001.parquet``).
        """

        def load() -> DatasetDict:
            splits = _files.split_files(folder)
            return cached(("files", _files.files_key(splits)), lambda: _files.read_files(splits))

        return cls._lazy(
            f"files:{os.fspath(folder)}", load, partitioners, preprocessor, test_size, seed
        )

    @classmethod
    def from_sklearn(
        cls,
        name: str,
        *,
        partitioners: Mapping[str, Partitioner | int],
        as_columns: bool = False,
        preprocessor: Preprocessor | None = None,
        test_size: float | None = None,
        seed: int = 42,
    ) -> FederatedDataset:
        """One of scikit-learn's bundled datasets: ``digits``, ``iris``, ``wine``, ``breast_cancer``.

        They need no network. The ``train`` split holds every example with a ``label``
        column (a ClassLabel) and either one ``features`` column of float32 vectors or,
        with ``as_columns=True``, one float32 column per feature, named as in scikit-learn.
        """
        if name not in _sources.SKLEARN_DATASETS:
            _sources.from_sklearn(name, as_columns)  # raises the error listing the names
        return cls._lazy(
            f"sklearn:{name}",
            lambda: cached(
                ("sklearn", name, as_columns), lambda: _sources.from_sklearn(name, as_columns)
            ),
            partitioners,
            preprocessor,
            test_size,
            seed,
        )

    @classmethod
    def _lazy(
        cls,
        source: str,
        load: Callable[[], Any],
        partitioners: Mapping[str, Partitioner | int],
        preprocessor: Preprocessor | None,
        test_size: float | None,
        seed: int,
    ) -> FederatedDataset:
        fds = cls(
            load,
            partitioners=partitioners,
            preprocessor=preprocessor,
            test_size=test_size,
            seed=seed,
        )
        fds.source = source
        return fds

    # -- using it ----------------------------------------------------------------------------

    @property
    def splits(self) -> list[str]:
        """The split names, after preprocessing (loads the data)."""
        return list(self._loaded())

    @property
    def num_partitions(self) -> int:
        """The number of partitions of the partitioned split (see :meth:`partitioner`)."""
        return self.partitioner().num_partitions

    def partitioner(self, split: str | None = None) -> Partitioner:
        """The partitioner of ``split``, given its dataset; ``None`` means the only partitioned split."""
        name = partitioned_split(list(self.partitioners), split)
        partitioner = self.partitioners[name]
        if name not in self._bound:
            with self._lock:
                if name not in self._bound:
                    # Refused if the partitioner already serves other data (shared by mistake).
                    partitioner.dataset = self.load_split(name)
                    self._bound.add(name)
        return partitioner

    def load_partition(self, partition_id: int, split: str | None = None) -> Dataset:
        """Return partition ``partition_id`` of ``split`` (the only partitioned split if None)."""
        name = partitioned_split(list(self.partitioners), split)
        key = (name, partition_id)
        found = self._partitions.get(key)
        if found is None:
            found = self.partitioner(name).load_partition(partition_id)
            self._partitions[key] = found
        return found

    def load_split(self, split: str) -> Dataset:
        """Return the whole of ``split`` (after preprocessing), e.g. a central test set."""
        data = self._loaded()
        if split not in data:
            raise DatasetError(f"There is no split {split!r}; the dataset has {list(data)}.")
        return data[split]

    def __repr__(self) -> str:
        parts = ", ".join(f"{s}: {type(p).__name__}" for s, p in self.partitioners.items())
        return f"FederatedDataset({self.source}, partitioners={{{parts}}}, seed={self.seed})"

    def _loaded(self) -> DatasetDict:
        if self._data is None:
            with self._lock:
                if self._data is None:
                    self._data = prepare(
                        self._load_data(),
                        self.preprocessor,
                        self.test_size,
                        self.seed,
                        list(self.partitioners),
                    )
        return self._data
