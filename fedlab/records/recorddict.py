"""`RecordDict`: the content of a Message, name → ArrayRecord | MetricRecord | ConfigRecord."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from typing import TypeVar

from fedlab.errors import RecordError
from fedlab.records.arrayrecord import ArrayRecord
from fedlab.records.configrecord import ConfigRecord
from fedlab.records.metricrecord import MetricRecord

__all__ = ["Record", "RecordDict"]

Record = ArrayRecord | MetricRecord | ConfigRecord
R = TypeVar("R", ArrayRecord, MetricRecord, ConfigRecord)


class RecordDict(MutableMapping[str, Record]):
    """The content of a :class:`~fedlab.Message`: named records.

    Examples
    --------
    >>> rd = RecordDict({"metrics": MetricRecord({"loss": 0.5}), "config": ConfigRecord({"lr": 0.1})})
    >>> list(rd.metric_records), list(rd.config_records)
    (['metrics'], ['config'])
    """

    def __init__(self, records: Mapping[str, Record] | None = None) -> None:
        self._records: dict[str, Record] = {}
        if records is not None:
            if not isinstance(records, Mapping):
                raise RecordError(
                    f"RecordDict must be built from a dict of records, got {type(records).__name__}."
                )
            for name, record in records.items():
                self[name] = record

    def __setitem__(self, name: str, record: Record) -> None:
        if not isinstance(name, str):
            raise RecordError(f"RecordDict keys must be str, got {type(name).__name__} ({name!r}).")
        if not isinstance(record, ArrayRecord | MetricRecord | ConfigRecord):
            raise RecordError(
                f"RecordDict[{name!r}] got a value of type {type(record).__name__}; "
                "allowed types are ArrayRecord, MetricRecord and ConfigRecord."
            )
        self._records[name] = record

    def __getitem__(self, name: str) -> Record:
        return self._records[name]

    def __delitem__(self, name: str) -> None:
        del self._records[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RecordDict):
            return NotImplemented
        return list(self._records.items()) == list(other._records.items())

    __hash__ = None  # type: ignore[assignment]

    @property
    def array_records(self) -> dict[str, ArrayRecord]:
        """The ArrayRecords, by name."""
        return {k: v for k, v in self._records.items() if isinstance(v, ArrayRecord)}

    @property
    def metric_records(self) -> dict[str, MetricRecord]:
        """The MetricRecords, by name."""
        return {k: v for k, v in self._records.items() if isinstance(v, MetricRecord)}

    @property
    def config_records(self) -> dict[str, ConfigRecord]:
        """The ConfigRecords, by name."""
        return {k: v for k, v in self._records.items() if isinstance(v, ConfigRecord)}

    def array_record(self, name: str) -> ArrayRecord:
        """Return the ArrayRecord called ``name``; raise a RecordError if there is none."""
        return self._typed(name, ArrayRecord)

    def metric_record(self, name: str) -> MetricRecord:
        """Return the MetricRecord called ``name``; raise a RecordError if there is none."""
        return self._typed(name, MetricRecord)

    def config_record(self, name: str) -> ConfigRecord:
        """Return the ConfigRecord called ``name``; raise a RecordError if there is none."""
        return self._typed(name, ConfigRecord)

    def _typed(self, name: str, kind: type[R]) -> R:
        record = self._records.get(name)
        if not isinstance(record, kind):
            found = "nothing" if record is None else f"a {type(record).__name__}"
            raise RecordError(
                f"RecordDict[{name!r}] is {found}, expected {kind.__name__}; "
                f"it holds {[f'{k}: {type(v).__name__}' for k, v in self._records.items()]}."
            )
        return record

    def copy(self) -> RecordDict:
        """Return a copy with copied records that share the (immutable) Arrays.

        A client that changes its copy changes nothing another client sees.
        """
        return RecordDict({k: v.copy() for k, v in self._records.items()})

    def __repr__(self) -> str:
        return f"RecordDict({self._records!r})"
