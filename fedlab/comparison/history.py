"""`ComparedHistory`: the Histories of the federations of a comparison, as one table."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from fedlab.errors import HistoryError, MissingDependencyError
from fedlab.history import History

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ComparedHistory"]


class ComparedHistory(Mapping[str, History]):
    """The History of each federation of a comparison, by name, in the order they ran.

    A read-only mapping ``name -> History``; :meth:`to_pandas` stacks their rows with a
    ``federation`` column first.

    Examples
    --------
    >>> from fedlab.events import RoundAggregated, RunStarted
    >>> a, b = History(), History()
    >>> for h, loss in ((a, 0.5), (b, 0.25)):
    ...     h(RunStarted(run_id=1, num_rounds=1, node_ids=(1,), strategy="FedAvg"))
    ...     h(RoundAggregated(run_id=1, round=1, metrics={"loss": loss}, num_replies=1,
    ...                       num_failures=0, train_duration_s=0.1, aggregate_duration_s=0.1))
    >>> table = ComparedHistory({"a": a, "b": b}).to_pandas()
    >>> table[["federation", "round", "train.loss"]].values.tolist()
    [['a', 1, 0.5], ['b', 1, 0.25]]
    """

    def __init__(self, histories: Mapping[str, History]) -> None:
        self._histories = dict(histories)

    def __getitem__(self, name: str) -> History:
        try:
            return self._histories[name]
        except KeyError:
            names = ", ".join(map(repr, self._histories))
            raise KeyError(f"No federation named {name!r} in this comparison; it has {names}.") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._histories)

    def __len__(self) -> int:
        return len(self._histories)

    def metric(
        self, name: str, source: Literal["train", "evaluate", "server"] = "train"
    ) -> dict[str, dict[int, Any]]:
        """``History.metric(name, source)`` of every federation, by federation name."""
        return {key: history.metric(name, source) for key, history in self._histories.items()}

    def to_pandas(self, kind: Literal["rounds", "clients"] = "rounds") -> pd.DataFrame:
        """Every federation's ``History.to_pandas(kind)`` stacked, with a ``federation`` column.

        Raises
        ------
        MissingDependencyError
            If pandas is not installed.
        """
        if kind not in ("rounds", "clients"):
            raise HistoryError(f"to_pandas() got kind={kind!r}; use 'rounds' or 'clients'.")
        try:
            import pandas as pd
        except ImportError:
            raise MissingDependencyError("pandas", "datasets", "ComparedHistory.to_pandas()") from None
        frames = []
        for name, history in self._histories.items():
            frame = history.to_pandas(kind)
            frame.insert(0, "federation", name)
            frames.append(frame)
        if not frames:
            empty: pd.DataFrame = pd.DataFrame({"federation": []})
            return empty
        stacked: pd.DataFrame = pd.concat(frames, ignore_index=True)
        return stacked

    def __repr__(self) -> str:
        parts = ", ".join(f"{k!r}: {h.rounds_completed} rounds" for k, h in self._histories.items())
        return f"ComparedHistory({{{parts}}})"
