"""Screening training replies before they are aggregated: one bad client fails alone.

A training reply is aggregated only if it returns the model it was sent: the same array
names in the same order, the same shapes and the same dtypes (no dtype is converted: a
float64 reply to a float32 model is refused, as averaging would have to pick one of them
silently), and no NaN or infinite value. A strategy that weighs the arrays also needs a
positive, finite weight (``num-examples``). A reply that fails any of this is replaced by
an error reply with :attr:`~fedlab.message.ErrorCode.REPLY_REJECTED` and reported with a
:class:`~fedlab.events.ReplyRejected` event, so the round goes on with the other replies.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from fedlab.events import Phase, ReplyRejected
from fedlab.message import Error, ErrorCode, Message
from fedlab.records import Array, ArrayRecord, MetricRecord
from fedlab.server.grid import Grid

__all__ = ["ReplyCheck", "ReplyScreen", "check_arrays", "check_weight", "reject"]

#: ``check(instruction, reply)``: why ``reply`` cannot be aggregated, or None to accept it.
ReplyCheck = Callable[[Message, Message], "str | None"]

#: Values checked for finiteness at a time.
_BLOCK = 65536
_FIX = "Return the arrays it received, trained: same names, order, shapes and dtypes."
_DIVERGED = (
    "Its training diverged or read bad data: lower the learning rate, clip the gradients "
    "or check the data."
)


def check_arrays(reply: Message, expected: Mapping[str, ArrayRecord]) -> str | None:
    """Why the reply's ArrayRecords differ from ``expected`` (record name -> as sent), or None.

    With one expected record, the reply must hold exactly one ArrayRecord, under any name
    (strategies read "the" ArrayRecord of a reply); with several, each under its name.
    """
    refused = f"Reply of node {reply.metadata.src_node_id} refused:"
    found = reply.content.array_records
    if len(expected) == 1 and len(found) != 1:
        return (
            f"{refused} it returned {len(found)} ArrayRecords ({sorted(found)}) where exactly "
            f"one is expected, the model it was sent under {next(iter(expected))!r}. Reply "
            "with RecordDict({'arrays': ArrayRecord(...), 'metrics': MetricRecord(...)})."
        )
    for key, sent in expected.items():
        record = next(iter(found.values())) if len(expected) == 1 else found.get(key)
        if record is None:
            return (
                f"{refused} it returned no ArrayRecord under {key!r} (its records: "
                f"{sorted(reply.content)}); the strategy reads {sorted(expected)}."
            )
        found_problem = _layout_problem(key, record, sent) or _values_problem(key, record)
        if found_problem is not None:
            problem, fix = found_problem
            return f"{refused} {problem}. {fix}"
    return None


def check_weight(reply: Message, key: str) -> str | None:
    """Why the reply's weight metric ``key`` is missing or not a positive finite number."""
    refused = f"Reply of node {reply.metadata.src_node_id} refused:"
    records = reply.content.metric_records
    fix = (
        f"Report how many examples it trained on, e.g. "
        f"MetricRecord({{{key!r}: len(train_data), ...}})."
    )
    if len(records) != 1:
        return (
            f"{refused} it returned {len(records)} MetricRecords ({sorted(records)}) where "
            f"exactly one is expected, holding the weight {key!r}. {fix}"
        )
    metrics: MetricRecord = next(iter(records.values()))
    value = metrics.get(key)
    if value is None:
        return f"{refused} it reported no {key!r} (its metrics: {sorted(metrics)}). {fix}"
    if isinstance(value, list) or not math.isfinite(value) or value <= 0:
        return (
            f"{refused} it reported {key}={value!r}; a reply's weight must be a positive, "
            f"finite number. {fix}"
        )
    return None


def reject(grid: Grid, instruction: Message, reply: Message, reason: str) -> Message:
    """Report ``reply`` as refused (a ReplyRejected event) and return its error reply."""
    error = Error(ErrorCode.REPLY_REJECTED, reason)
    md = instruction.metadata
    phase: Phase = md.message_type.split(".")[0]  # type: ignore[assignment]
    grid.events.emit(
        ReplyRejected(
            run_id=grid.run_id,
            round=md.round,
            phase=phase,
            node_id=md.dst_node_id,
            error=error,
            partition_id=grid.partition_id(md.dst_node_id),
        )
    )
    return Message.from_parts(reply.metadata, error=error)


class ReplyScreen:
    """Checks each reply of a round against the instruction it answers.

    Replies come in the order of the instructions (the Grid's ``send_and_stream``), so
    each is matched by position; a reply out of place is looked up by message id.
    """

    def __init__(self, grid: Grid, instructions: Sequence[Message], check: ReplyCheck) -> None:
        self._grid, self._instructions, self._check = grid, instructions, check
        self._position = 0
        self._by_id: dict[str, Message] | None = None

    def __call__(self, reply: Message) -> Message:
        """Return ``reply``, or its error reply if the check refuses it."""
        instruction = self._instruction(reply)
        if reply.has_error() or instruction is None:
            return reply
        reason = self._check(instruction, reply)
        return reply if reason is None else reject(self._grid, instruction, reply, reason)

    def _instruction(self, reply: Message) -> Message | None:
        position, self._position = self._position, self._position + 1
        wanted = reply.metadata.reply_to_message_id
        if position < len(self._instructions):
            candidate = self._instructions[position]
            if candidate.metadata.message_id == wanted:
                return candidate
        if self._by_id is None:
            self._by_id = {m.metadata.message_id: m for m in self._instructions}
        return self._by_id.get(wanted)


def _layout_problem(key: str, record: ArrayRecord, sent: ArrayRecord) -> tuple[str, str] | None:
    names, expected = list(record), list(sent)
    if names != expected:
        missing = [n for n in expected if n not in record]
        extra = [n for n in names if n not in sent]
        if not missing and not extra:
            order = f"the arrays of {key!r} come in the order {names}"
            problem = f"{order}, the global model's in {expected}"
        else:
            wrong = [f"lacks {missing}"] if missing else []
            wrong += [f"has extra {extra}"] if extra else []
            problem = f"{key!r} {' and '.join(wrong)}: the global model's arrays are {expected}"
        return problem, _FIX
    for name, array in record.items():
        want = sent[name]
        if array.shape != want.shape:
            shape = f"array {name!r} in {key!r} has shape {array.shape}"
            return f"{shape} where the global model's has {want.shape}", _FIX
        if array.dtype != want.dtype:
            dtype = f"array {name!r} in {key!r} has dtype {array.dtype}"
            return (
                f"{dtype} where the global model's has {want.dtype}, and dtypes are not converted",
                f"Cast it back before replying, e.g. arr.astype({want.dtype!r}).",
            )
    return None


def _values_problem(key: str, record: ArrayRecord) -> tuple[str, str] | None:
    for name, array in record.items():
        counts = _non_finite(array)
        if counts is None:
            continue
        what = " and ".join(
            f"{count} {label} value{'' if count == 1 else 's'}"
            for count, label in zip(counts, ("NaN", "infinite"), strict=True)
            if count
        )
        return f"array {name!r} in {key!r} holds {what} (of {math.prod(array.shape)})", _DIVERGED
    return None


def _non_finite(array: Array) -> tuple[int, int] | None:
    """(NaN count, infinity count) of a float or complex array; None if all are finite."""
    if array.dtype == "bfloat16":  # exponent bits all set: infinity or NaN
        bits = np.frombuffer(array.data, dtype="<u2")
        special = (bits & 0x7F80) == 0x7F80
        if not special.any():
            return None
        nans = int(np.count_nonzero(special & ((bits & 0x007F) != 0)))
        return nans, int(np.count_nonzero(special)) - nans
    kind = np.dtype(array.dtype).kind
    if kind not in "fc":
        return None
    values = array.numpy().reshape(-1)
    # Block by block into one small buffer: exact, and no temporary as large as the array.
    flags = np.empty(min(values.size, _BLOCK), dtype=bool)
    for start in range(0, values.size, _BLOCK):
        part = values[start : start + _BLOCK]
        if not np.isfinite(part, out=flags[: part.size]).all():
            nans = int(np.count_nonzero(np.isnan(values)))
            return nans, int(np.count_nonzero(np.isinf(values)))
    return None
