"""What the clipping and local-DP Mods share: find the update, measure it, rebuild the reply.

Every failed precondition is a :class:`Refusal` whose text says what to fix; the Mods
turn it into an error reply (``ErrorCode.MOD_FAILED_PRECONDITION``) so a client never
sends arrays it could not protect.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from fedlab.errors import FedlabError, RecordError
from fedlab.message import Error, ErrorCode, Message
from fedlab.records import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

#: The ConfigRecord key a client-side DP wrapper sets to the clipping norm.
CLIPPING_NORM_KEY = "dp-clipping-norm"
#: The MetricRecord key the adaptive clipping Mod reports its norm bit under.
NORM_BIT_KEY = "dp-norm-bit"

_FLOATS = ("float16", "float32", "float64")


class Refusal(FedlabError):
    """A precondition of a Mod failed; ``str(self)`` is the reason sent to the server.

    Never escapes a Mod: each one turns it into an error reply.
    """


def refuse(msg: Message, reason: str) -> Message:
    """The error reply to ``msg`` for a failed precondition."""
    return msg.reply(Error(ErrorCode.MOD_FAILED_PRECONDITION, reason))


def is_train(msg: Message) -> bool:
    """True for ``train`` and ``train.<action>`` instructions."""
    return msg.metadata.message_type.partition(".")[0] == "train"


def check_positive(name: str, value: object) -> float:
    """``value`` as a float if it is a finite positive number, else a Refusal."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise Refusal(f"{name} must be a finite number above 0, got {value!r}.")
    return float(value)


def clipping_norm_of(msg: Message, configrecord_key: str) -> float:
    """The clipping norm the server put in the instruction's ConfigRecord."""
    record = msg.content.get(configrecord_key)
    if not isinstance(record, ConfigRecord) or CLIPPING_NORM_KEY not in record:
        raise Refusal(
            f"The train instruction has no {CLIPPING_NORM_KEY!r} in its ConfigRecord "
            f"{configrecord_key!r}; wrap the server's strategy in a client-side clipping DP "
            "strategy, or put the clipping norm in the train config yourself."
        )
    return check_positive(f"config[{CLIPPING_NORM_KEY!r}]", record[CLIPPING_NORM_KEY])


def arrays_of(content: RecordDict, key: str, what: str) -> ArrayRecord:
    """The ArrayRecord ``key`` of ``content``, every array floating-point."""
    record = content.get(key)
    if not isinstance(record, ArrayRecord):
        raise Refusal(
            f"The {what} has no ArrayRecord {key!r} (it holds {sorted(content)}); "
            "pass arrayrecord_key= the name the strategy uses for the model."
        )
    for name, array in record.items():
        if array.dtype not in _FLOATS:
            raise Refusal(
                f"Array {name!r} of the {what} is {array.dtype}; clipping needs float16, "
                "float32 or float64 arrays. Leave integer buffers out of the ArrayRecord "
                "or convert them to float."
            )
    return record


def update_of(received: ArrayRecord, returned: ArrayRecord) -> dict[str, npt.NDArray[np.float64]]:
    """``returned - received`` per array, in float64; a Refusal if the two do not match."""
    if list(received) != list(returned):
        raise Refusal(
            f"The reply's arrays {list(returned)} are not the arrays received {list(received)}; "
            "return the same names in the same order so the update can be clipped."
        )
    update = {}
    for name, sent in received.items():
        back = returned[name]
        if back.shape != sent.shape:
            raise Refusal(
                f"Array {name!r} came back with shape {back.shape}, sent {sent.shape}; "
                "return arrays of the shapes received."
            )
        update[name] = _as_float64(back) - _as_float64(sent)
    return update


def l2_norm(update: dict[str, npt.NDArray[np.float64]]) -> float:
    """The L2 norm of all arrays of ``update`` flattened together."""
    return math.sqrt(sum(float(np.dot(u.ravel(), u.ravel())) for u in update.values()))


def rebuilt(
    reply: Message,
    key: str,
    received: ArrayRecord,
    update: dict[str, npt.NDArray[np.float64]],
    metrics: dict[str, Any] | None = None,
) -> Message:
    """``reply`` with ``received + update`` as its arrays (each in the reply's dtype)."""
    returned = reply.content.array_record(key)
    arrays = {
        name: Array.from_numpy(
            (_as_float64(sent) + update[name]).astype(returned[name].dtype, copy=False)
        )
        for name, sent in received.items()
    }
    content = RecordDict(dict(reply.content))
    content[key] = ArrayRecord(arrays)
    if metrics:
        content = with_metrics(content, metrics)
    return reply.with_content(content)


def with_metrics(content: RecordDict, metrics: dict[str, Any]) -> RecordDict:
    """A copy of ``content`` whose MetricRecord ``"metrics"`` also holds ``metrics``."""
    old = content.get("metrics", MetricRecord())
    if not isinstance(old, MetricRecord):
        raise Refusal(
            f"The reply's 'metrics' is a {type(old).__name__}, not a MetricRecord; a Mod "
            "reports its numbers there, so keep that name for a MetricRecord."
        )
    merged = RecordDict(dict(content))
    merged["metrics"] = MetricRecord({**old, **metrics})
    return merged


def _as_float64(array: Array) -> npt.NDArray[np.float64]:
    try:
        return array.numpy().astype(np.float64)
    except RecordError as err:  # bfloat16 has no numpy dtype
        raise Refusal(str(err)) from err
