"""`secaggplus_mod`: the client's side of SecAgg+, as a Mod.

Add it to the ClientApp (``ClientApp(mods=[secaggplus_mod])``) and wrap the server's
strategy in :class:`~fedlab.privacy.secagg.SecAggPlus`. The mod answers the protocol's
``setup``, ``share-keys`` and ``unmask`` stages itself; on the ``collect`` stage it calls
the training handler as usual and replaces its reply by the masked, quantised, weighted
update, so the server never receives the client's arrays or metrics. Training messages
without a SecAgg+ record pass through untouched. Secrets live in ``context.state``
(which never leaves the node); the keys and the mask seed are deleted after ``unmask``.

A message that breaks the protocol is refused with an error reply (code
``MOD_FAILED_PRECONDITION``, reason ``SecAggViolation: ...``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedlab.client.mod import CallNext
from fedlab.context import Context
from fedlab.message import Error, ErrorCode, Message, MessageType
from fedlab.privacy.secagg import SecAggViolation, client
from fedlab.privacy.secagg.protocol import COLLECT, RECORD, SETUP, SHARE_KEYS, STAGE, UNMASK
from fedlab.records import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

__all__ = ["SecAggPlusMod", "secaggplus_mod"]


def secaggplus_mod(msg: Message, ctx: Context, call_next: CallNext) -> Message:
    """Run this client's part of a SecAgg+ round (see the module docstring)."""
    record = msg.content.get(RECORD) if msg.has_content() else None
    if msg.metadata.message_type.split(".")[0] != MessageType.TRAIN or not isinstance(record, ConfigRecord):
        return call_next(msg, ctx)
    stage, rnd = record.get(STAGE), msg.metadata.round
    try:
        if stage == SETUP:
            state, reply = client.setup(record, rnd)
            ctx.state[RECORD] = state
            return _answer(msg, reply)
        stored = ctx.state.get(RECORD)
        if not isinstance(stored, ConfigRecord):
            raise SecAggViolation(f"SecAggViolation: stage {stage!r} arrived before setup.")
        state = stored
        if stage == SHARE_KEYS:
            return _answer(msg, client.share_keys(state, record, rnd))
        if stage == COLLECT:
            client.collect(state, record, rnd)
            return _collect(msg, ctx, call_next, state)
        if stage == UNMASK:
            reply = client.unmask(state, record, rnd)
            for secret in ("sk-c", "sk-s", "seed"):  # not needed again; the shares stay
                state.pop(secret, None)  # for a repeated request (held to the same answers)
            return _answer(msg, reply)
        raise SecAggViolation(f"SecAggViolation: unknown stage {stage!r}.")
    except SecAggViolation as exc:
        return msg.reply(Error(ErrorCode.MOD_FAILED_PRECONDITION, str(exc)))


class SecAggPlusMod:
    """The SecAgg+ client Mod as an object, for ``ClientApp(mods=[SecAggPlusMod()])``.

    It behaves exactly as :func:`secaggplus_mod` (it has no settings: the server sends
    them with each round).
    """

    def __call__(self, msg: Message, ctx: Context, call_next: CallNext) -> Message:
        """Run :func:`secaggplus_mod`."""
        return secaggplus_mod(msg, ctx, call_next)


def _answer(msg: Message, values: dict[str, Any]) -> Message:
    return msg.reply(RecordDict({RECORD: ConfigRecord(values)}))


def _collect(msg: Message, ctx: Context, call_next: CallNext, state: ConfigRecord) -> Message:
    content = RecordDict({k: v for k, v in msg.content.items() if k != RECORD})
    received = content.get("arrays")
    reply = call_next(msg.with_content(content), ctx)
    if reply.has_error():
        return reply
    if not isinstance(received, ArrayRecord):
        raise SecAggViolation("SecAggViolation: the training instruction holds no 'arrays' to update.")
    arrays = [r for r in reply.content.values() if isinstance(r, ArrayRecord)]
    metrics = [r for r in reply.content.values() if isinstance(r, MetricRecord)]
    if len(arrays) != 1 or list(arrays[0]) != list(received):
        raise SecAggViolation(
            "SecAggViolation: the training reply must hold one ArrayRecord with the same "
            f"arrays as the model it was sent ({list(received)})."
        )
    parts = []
    for name, sent in received.items():
        new, old = arrays[0][name].numpy(), sent.numpy()
        if new.shape != old.shape:
            raise SecAggViolation(f"SecAggViolation: array {name!r} changed shape {old.shape} -> {new.shape}.")
        parts.append((new.astype(np.float64) - old.astype(np.float64)).ravel())
    examples = next((m["num-examples"] for m in metrics if "num-examples" in m), 1)
    weight = min(int(round(float(examples))), int(state["max-weight"]))  # type: ignore[arg-type]
    vector = client.masked_vector(state, np.concatenate(parts) if parts else np.zeros(0), max(weight, 0))
    modulus: Any = state["modulus-range"]
    wire = np.uint32 if int(modulus) <= 2**32 else np.uint64
    return msg.reply(RecordDict({RECORD: ArrayRecord({"masked": Array.from_numpy(vector.astype(wire))})}))
