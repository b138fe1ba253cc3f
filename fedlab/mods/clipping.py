"""Client-side clipping Mods, the client half of central DP with client-side clipping.

The server's client-side DP wrapper puts the clipping norm ``C`` in every train
instruction's ConfigRecord (``content["config"]["dp-clipping-norm"]``). After the
handler has trained, the Mod computes the *update* ``u = returned - received`` over all
arrays of the model record flattened together, scales it to ``u * min(1, C / ||u||_2)``
and sends back ``received + u``. The server then only adds noise calibrated to ``C``.

:class:`AdaptiveClippingMod` also reports ``"dp-norm-bit"`` in the reply's MetricRecord
``content["metrics"]``: 1 if the unclipped norm was at most ``C``, else 0. The server
averages those bits to move ``C`` towards a target quantile of the update norms
(Andrew et al. 2021, "Differentially Private Learning with Adaptive Clipping").

A clipping Mod clips what the handler and the Mods listed after it return; the Mods
listed before it see the clipped reply (the first Mod is the outermost). So list a Mod
that masks or encrypts the update (SecAgg+, CKKS) before it, and a Mod that changes the
model's arrays in the clear after it.

Only ``train`` instructions are touched; evaluate and query messages, and error replies,
pass through unchanged. A reply whose update is already within ``C`` is returned as the
handler built it. A precondition that fails (no clipping norm in the instruction,
integer arrays, arrays that changed name or shape) becomes an error reply with code
``MOD_FAILED_PRECONDITION`` that says what to fix; the handler's arrays are never sent
unclipped.

Examples
--------
>>> import numpy as np
>>> from fedlab import ClientApp, ConfigRecord, Context, Message, RecordDict
>>> from fedlab.records import ArrayRecord
>>> app = ClientApp(mods=[fixedclipping_mod])
>>> @app.train()
... def train(msg, ctx):
...     return msg.reply(RecordDict({"arrays": ArrayRecord([np.array([3.0, 4.0])])}))
>>> ins = Message(RecordDict({"arrays": ArrayRecord([np.zeros(2)]),
...                           "config": ConfigRecord({"dp-clipping-norm": 1.0})}), 1, "train")
>>> app(ins, Context(0, 1)).content["arrays"]["0"].numpy()
array([0.6, 0.8])
"""

from __future__ import annotations

from fedlab.client.mod import CallNext
from fedlab.context import Context
from fedlab.message import Message
from fedlab.mods._update import (
    CLIPPING_NORM_KEY,
    NORM_BIT_KEY,
    Refusal,
    arrays_of,
    clipping_norm_of,
    is_train,
    l2_norm,
    rebuilt,
    refuse,
    update_of,
    with_metrics,
)

__all__ = [
    "AdaptiveClippingMod",
    "CLIPPING_NORM_KEY",
    "FixedClippingMod",
    "NORM_BIT_KEY",
    "adaptiveclipping_mod",
    "fixedclipping_mod",
]


class FixedClippingMod:
    """Clip each training update to the L2 norm the server sends (``"dp-clipping-norm"``).

    Parameters
    ----------
    arrayrecord_key
        The name of the model's ArrayRecord in instructions and replies (FedAvg's
        ``arrayrecord_key``, ``"arrays"`` by default).
    configrecord_key
        The name of the ConfigRecord that holds ``"dp-clipping-norm"`` (``"config"``).
    """

    #: Whether to report the norm bit (set by :class:`AdaptiveClippingMod`).
    _reports_norm_bit = False

    def __init__(
        self, *, arrayrecord_key: str = "arrays", configrecord_key: str = "config"
    ) -> None:
        self.arrayrecord_key = arrayrecord_key
        self.configrecord_key = configrecord_key

    def __call__(self, msg: Message, ctx: Context, call_next: CallNext) -> Message:
        """Run the handler, then clip its update; see the module docstring."""
        if not is_train(msg) or msg.has_error():
            return call_next(msg, ctx)
        try:
            norm_limit = clipping_norm_of(msg, self.configrecord_key)
            received = arrays_of(msg.content, self.arrayrecord_key, "train instruction")
        except Refusal as refusal:
            return refuse(msg, f"{type(self).__name__}: {refusal}")
        reply = call_next(msg, ctx)
        if reply.has_error():
            return reply
        try:
            returned = arrays_of(reply.content, self.arrayrecord_key, "reply")
            update = update_of(received, returned)
            norm = l2_norm(update)
            bit = {NORM_BIT_KEY: int(norm <= norm_limit)} if self._reports_norm_bit else None
            if norm <= norm_limit:
                return (
                    reply if bit is None else reply.with_content(with_metrics(reply.content, bit))
                )
            scale = norm_limit / norm
            clipped = {name: u * scale for name, u in update.items()}
            return rebuilt(reply, self.arrayrecord_key, received, clipped, bit)
        except Refusal as refusal:
            return refuse(msg, f"{type(self).__name__}: {refusal}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(arrayrecord_key={self.arrayrecord_key!r})"


class AdaptiveClippingMod(FixedClippingMod):
    """Clip like :class:`FixedClippingMod` and report the norm bit ``"dp-norm-bit"``.

    The bit is 1 when the update's unclipped L2 norm is at most the clipping norm, else 0;
    it is added to the reply's MetricRecord ``"metrics"`` (created if the handler sent
    none). Pair it with a client-side adaptive clipping DP strategy.

    Parameters
    ----------
    arrayrecord_key, configrecord_key
        As for :class:`FixedClippingMod`.
    """

    _reports_norm_bit = True


_FIXED = FixedClippingMod()
_ADAPTIVE = AdaptiveClippingMod()


def fixedclipping_mod(msg: Message, ctx: Context, call_next: CallNext) -> Message:
    """Flower's name for ``FixedClippingMod()``: clip the training update to the sent norm.

    Use ``FixedClippingMod(arrayrecord_key=...)`` when the model record is not ``"arrays"``.
    """
    return _FIXED(msg, ctx, call_next)


def adaptiveclipping_mod(msg: Message, ctx: Context, call_next: CallNext) -> Message:
    """Flower's name for ``AdaptiveClippingMod()``: clip and report ``"dp-norm-bit"``.

    Use ``AdaptiveClippingMod(arrayrecord_key=...)`` when the model record is not ``"arrays"``.
    """
    return _ADAPTIVE(msg, ctx, call_next)
