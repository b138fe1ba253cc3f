"""RecordDict ↔ protobuf header plus array buffers: the record half of the codec.

Array data never enters protobuf: :func:`record_dict_to_proto` returns the buffers to
write after the header, and :func:`record_dict_from_proto` slices them back out of the
bytes that follow it. Every check here raises :class:`~fedlab.errors.CodecError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from fedlab.errors import CodecError, RecordError
from fedlab.records import (
    ALLOWED_DTYPES,
    Array,
    ArrayRecord,
    ConfigRecord,
    MetricRecord,
    RecordDict,
)

__all__ = ["MAX_NDIM", "check_array_header", "record_dict_from_proto", "record_dict_to_proto"]

#: The most dimensions an array may have on the wire (numpy 2's own limit).
MAX_NDIM = 64
_INT64 = (-(2**63), 2**63 - 1)
# numpy refuses arrays whose size (zero dims aside) times itemsize exceeds intp.
_MAX_EXTENT = 2**63 - 1
_LIST_FIELDS = {bool: "bool_list", int: "int_list", float: "float_list",
                str: "str_list", bytes: "bytes_list"}  # fmt: skip
_SCALAR_FIELDS = {bool: "bool_value", int: "int_value", float: "float_value",
                  str: "str_value", bytes: "bytes_value"}  # fmt: skip


def check_array_header(where: str, dtype: str, shape: tuple[int, ...], nbytes: int) -> None:
    """Raise CodecError unless ``dtype``, ``shape`` and ``nbytes`` describe a valid array."""
    if dtype not in ALLOWED_DTYPES:
        raise CodecError(
            f"{where} has dtype {dtype!r}; expected one of {', '.join(ALLOWED_DTYPES)}."
        )
    if len(shape) > MAX_NDIM:
        raise CodecError(f"{where} has {len(shape)} dimensions; at most {MAX_NDIM} are allowed.")
    itemsize = ALLOWED_DTYPES[dtype]
    if any(d < 0 for d in shape) or math.prod(d for d in shape if d) * itemsize > _MAX_EXTENT:
        raise CodecError(
            f"{where} has shape {shape}; expected non-negative dims whose product times the "
            f"itemsize ({itemsize}) is at most 2**63 - 1."
        )
    expected = math.prod(shape) * itemsize
    if nbytes != expected:
        raise CodecError(
            f"{where} declares {nbytes} bytes, but dtype {dtype} and shape {shape} need "
            f"{expected}: the header lies about the array's size."
        )


def record_dict_to_proto(records: RecordDict, proto: Any) -> list[bytes | memoryview]:
    """Fill ``proto``, a ``RecordDictProto``, and return the array buffers to write after it."""
    proto.SetInParent()
    buffers: list[bytes | memoryview] = []
    where = "a record name"
    try:
        for name, record in records.items():
            where = f"record {name!r}"
            entry = proto.records.add(name=name)
            if isinstance(record, ArrayRecord):
                entry.array_record.SetInParent()
                for key, array in record.items():
                    where = f"array {key!r} of record {name!r}"
                    check_array_header(where, array.dtype, array.shape, array.nbytes)
                    entry.array_record.arrays.add(
                        name=key, dtype=array.dtype, shape=array.shape, nbytes=array.nbytes
                    )
                    buffers.append(array.data)
            else:
                target = (
                    entry.metric_record if isinstance(record, MetricRecord) else entry.config_record
                )
                target.SetInParent()
                for key, value in record.items():
                    where = f"{type(record).__name__}[{key!r}] of record {name!r}"
                    _set_value(target.entries.add(key=key), value, where)
    except (TypeError, ValueError) as err:
        if isinstance(err, CodecError):
            raise
        raise CodecError(f"Cannot encode {where}: {err}") from err
    return buffers


def _set_value(entry: Any, value: Any, where: str) -> None:
    if isinstance(value, list):
        if not value:
            # An empty list has no element type to keep; any list field decodes to [].
            entry.int_list.SetInParent()
            return
        kind = _kind(value[0], where)
        if kind is int:
            _check_int64(min(value), where)
            _check_int64(max(value), where)
        getattr(entry, _LIST_FIELDS[kind]).values.extend(value)
        return
    kind = _kind(value, where)
    if kind is int:
        _check_int64(value, where)
    setattr(entry, _SCALAR_FIELDS[kind], value)


def _kind(value: Any, where: str) -> type:
    # bool first: it is a subclass of int but must stay a bool.
    for kind in (bool, int, float, str, bytes):
        if isinstance(value, kind):
            return kind
    raise CodecError(f"{where} holds a {type(value).__name__}, which the codec cannot encode.")


def _check_int64(value: int, where: str) -> None:
    if not _INT64[0] <= value <= _INT64[1]:
        raise CodecError(
            f"{where} holds the int {value}, outside the int64 range [-2**63, 2**63 - 1] "
            "that a message can carry; send it as a str or a float instead."
        )


def record_dict_from_proto(proto: Any, payload: memoryview, *, frozen: bool = False) -> RecordDict:
    """Rebuild a RecordDict from its header and the array bytes that followed it.

    Arrays are slices of ``payload``: zero-copy if it views a ``bytes`` object or if
    ``frozen`` (the caller's promise that this read-only buffer never changes), copied by
    :class:`Array` otherwise. ``payload`` must hold exactly the declared array bytes.
    """
    array: Callable[[str, tuple[int, ...], memoryview], Array]
    array = Array.over_frozen_buffer if frozen else Array
    declared = _check_array_headers(proto)
    if declared != payload.nbytes:
        problem = "is truncated" if declared > payload.nbytes else "has trailing bytes"
        raise CodecError(
            f"The header declares {declared} bytes of array data, but {payload.nbytes} bytes "
            f"follow it: the message {problem}."
        )
    records = RecordDict()
    offset = 0
    for entry in proto.records:
        name = entry.name
        kind = entry.WhichOneof("record")
        if name in records:
            raise CodecError(f"The header holds two records named {name!r}; names must be unique.")
        if kind is None:
            raise CodecError(f"Record {name!r} has no record set; expected an array, metric "
                             "or config record.")  # fmt: skip
        if kind == "array_record":
            arrays = ArrayRecord()
            for header in entry.array_record.arrays:
                end = offset + header.nbytes
                arrays[header.name] = array(header.dtype, tuple(header.shape), payload[offset:end])
                offset = end
            records[name] = arrays
            continue
        cls = MetricRecord if kind == "metric_record" else ConfigRecord
        values = _entries(getattr(entry, kind).entries, f"{cls.__name__} {name!r}")
        try:
            records[name] = cls(values)
        except RecordError as err:
            raise CodecError(f"Record {name!r} is not a valid {cls.__name__}: {err}") from err
    return records


def _check_array_headers(proto: Any) -> int:
    total = 0
    for entry in proto.records:
        if entry.WhichOneof("record") != "array_record":
            continue
        seen: set[str] = set()
        for header in entry.array_record.arrays:
            where = f"Array {header.name!r} of record {entry.name!r}"
            if header.name in seen:
                raise CodecError(f"{where} appears twice; array names must be unique.")
            seen.add(header.name)
            check_array_header(where, header.dtype, tuple(header.shape), header.nbytes)
            total += header.nbytes
    return total


def _entries(entries: Any, where: str) -> Mapping[str, Any]:
    values: dict[str, Any] = {}
    for entry in entries:
        kind = entry.WhichOneof("value")
        if kind is None:
            raise CodecError(f"{where} key {entry.key!r} has no value set.")
        if entry.key in values:
            raise CodecError(f"{where} holds key {entry.key!r} twice; keys must be unique.")
        value = getattr(entry, kind)
        values[entry.key] = list(value.values) if kind.endswith("_list") else value
    return values
