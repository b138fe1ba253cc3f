"""Homomorphic aggregation, server side: FedAvg over CKKS ciphertexts, without the secret key.

:class:`CkksFedAvg` is FedAvg whose replies are encrypted by each client's
:class:`~fedlab.mods.ckks.CkksMod`. It multiplies each reply's ciphertexts by the reply's
``num-examples`` (a plaintext scalar), adds them, and sends the encrypted sum with the
total weight to the next round's clients, which decrypt it and divide.

What the server learns, and what it does not
--------------------------------------------
It holds a public context: it can encrypt, add and multiply by plain numbers, not decrypt
(:meth:`CkksFedAvg.__init__` refuses a context holding a secret key). It never sees a
client's update nor the aggregate model in the clear. It does see everything outside the
ciphertexts: which nodes replied, their ``num-examples`` and other metrics (plaintext), the
model's layout (names, dtypes, shapes) and the round-1 model it sent itself. CKKS protects
against a server that follows the protocol but is curious; it does not stop a server that
sends clients a forged aggregate (it could encrypt arrays of its choice with the public key),
nor a client that shares the secret key, nor what the decrypted global model itself reveals
(combine with differential privacy for that). The server-side Result keeps the initial
arrays: the trained model exists only on the clients (and is
:func:`~fedlab.mods.ckks.decrypt_arrays` of :attr:`CkksFedAvg.encrypted_aggregate`).

Precision (measured in tests/unit/privacy/test_ckks.py, defaults of
:func:`~fedlab.mods.ckks.ckks_keys`: degree 8192, moduli 60-40-40-60 bits, scale 2**40):
one round's decrypted mean differs from the plaintext one by at most about 4e-7 (absolute)
for parameters of order 1. Cost (``bench/ckks.py``, 100k parameters): 83 bytes per
parameter on the wire (21x float32), about 2.1 us per parameter to encrypt, 0.6 us to
weight and add, 0.5 us to decrypt, on one CPU core.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, cast

import numpy as np

from fedlab.errors import AggregationError, ConfigurationError
from fedlab.message import Message, MessageType
from fedlab.mods.ckks import AGGREGATE_KEY, REPLY_KEY, layout_of, load_context, slots_of
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from fedlab.server.grid import Grid
from fedlab.strategy import FedAvg, StrategyState

__all__ = ["CkksFedAvg"]


class CkksFedAvg(FedAvg):
    """FedAvg on CKKS-encrypted replies: the server adds ciphertexts it cannot decrypt.

    Parameters
    ----------
    public_context
        The serialized public context (:attr:`~fedlab.mods.ckks.CkksKeys.public`). A context
        holding the secret key is refused.
    **fedavg
        FedAvg's settings (``fraction_train``, ``min_train_nodes``, ``weighted_by_key``, ...).

    Notes
    -----
    Round 1 sends the initial arrays in the clear (the server chose them). Every later
    instruction, for training and evaluation, carries instead ``ckks-aggregate``: the
    weighted sum of the last round's ciphertexts and ``total-weight``. Every client must
    run :class:`~fedlab.mods.ckks.CkksMod` with the matching secret context; a reply
    without its ``ckks`` record, or with another layout or number of ciphertexts, is refused.
    A server-side ``evaluate_fn`` only ever sees the initial arrays. Checkpoints keep the
    encrypted aggregate (its ciphertexts as uint8 arrays), so ``Federation.resume`` goes on
    from the encrypted model.

    Examples
    --------
    >>> from fedlab.mods.ckks import CkksMod, ckks_keys
    >>> keys = ckks_keys()
    >>> strategy = CkksFedAvg(keys.public, min_available_nodes=3)
    >>> client_mod = CkksMod(keys.secret)
    >>> strategy.holds_secret_key
    False
    """

    streams_replies = True

    def __init__(self, public_context: bytes, **fedavg: Any) -> None:
        super().__init__(**fedavg)
        context = load_context(public_context)
        if context.is_private():
            raise ConfigurationError(
                "CkksFedAvg was given a context holding the secret key; the server must get "
                "only the public one (CkksKeys.public), or it can decrypt every client's update."
            )
        self.public_context = public_context
        self._context = context
        self._slots = slots_of(context)
        self._layout: str | None = None
        self._aggregate: ConfigRecord | None = None

    @property
    def holds_secret_key(self) -> bool:
        """Whether this strategy's context can decrypt (always False)."""
        return bool(self._context.is_private())

    @property
    def encrypted_aggregate(self) -> ConfigRecord | None:
        """The latest round's encrypted weighted sum and ``total-weight`` (None before one)."""
        return self._aggregate

    def summary(self) -> str:
        """One line describing this strategy (without the context's bytes)."""
        return f"CkksFedAvg(fraction_train={self.fraction_train}, slots={self._slots})"

    def state_dict(self) -> StrategyState:
        """The sampling RNG, the layout and the encrypted aggregate (ciphertexts as uint8 arrays)."""
        state = super().state_dict()
        if self._layout is not None:
            state.values["ckks-layout"] = self._layout
        if self._aggregate is not None:
            blobs = cast("list[bytes]", self._aggregate["ciphertexts"])
            state.arrays["ckks-aggregate"] = ArrayRecord(
                {str(i): np.frombuffer(b, dtype=np.uint8) for i, b in enumerate(blobs)}
            )
            state.values["ckks-total-weight"] = float(self._aggregate["total-weight"])  # type: ignore[arg-type]
        return state

    def load_state_dict(self, state: StrategyState) -> None:
        """Restore what :meth:`state_dict` returned, so a resumed run sends the encrypted model."""
        super().load_state_dict(state)
        self._layout = state.values.get("ckks-layout")
        saved = state.arrays.get("ckks-aggregate")
        self._aggregate = None if saved is None else ConfigRecord({
            "layout": str(self._layout),
            "ciphertexts": [saved[str(i)].numpy().tobytes() for i in range(len(saved))],
            "total-weight": float(state.values["ckks-total-weight"]),
        })

    def reset(self) -> None:
        """Forget an earlier run's aggregate and layout."""
        super().reset()
        self._layout = None
        self._aggregate = None

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Send the initial arrays (round 1) or the encrypted aggregate to a sample of nodes."""
        self._current_arrays = arrays
        nodes = self.sample_nodes(grid, self.fraction_train, self.min_train_nodes, self.min_available_nodes)
        return self._encrypted_instructions(grid, nodes, arrays, config, MessageType.TRAIN, server_round)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Send the encrypted aggregate to a sample of nodes for evaluation."""
        nodes = self.sample_nodes(grid, self.fraction_evaluate, self.min_evaluate_nodes, self.min_available_nodes)
        return self._encrypted_instructions(grid, nodes, arrays, config, MessageType.EVALUATE, server_round)

    def _encrypted_instructions(
        self, grid: Grid, nodes: Sequence[int], arrays: ArrayRecord, config: ConfigRecord,
        message_type: str, server_round: int,
    ) -> list[Message]:
        if self._aggregate is None:
            self._layout = layout_of(arrays)
            return self._instructions(grid, nodes, arrays, config, message_type, server_round)
        content = RecordDict({AGGREGATE_KEY: self._aggregate, self.configrecord_key: config})
        return [grid.create_message(content, message_type, n, group_id=str(server_round)) for n in nodes]

    def expected_arrays(self, instruction: Message) -> dict[str, ArrayRecord]:
        """None: encrypted replies carry ciphertexts, not ArrayRecords."""
        return {}

    def check_train_reply(self, instruction: Message, reply: Message) -> str | None:
        """Refuse a reply without its ``ckks`` record, with another layout, or no weight."""
        refused = f"Reply of node {reply.metadata.src_node_id} refused:"
        record = reply.content.get(REPLY_KEY)
        if not isinstance(record, ConfigRecord):
            return (
                f"{refused} it holds no {REPLY_KEY!r} ConfigRecord (its records: {sorted(reply.content)}). "
                "Add CkksMod(keys.secret) to the ClientApp's mods."
            )
        if record.get("layout") != self._layout:
            return f"{refused} its encrypted arrays have another layout than the model it was sent."
        blobs = record.get("ciphertexts")
        needed = math.ceil(_size(self._layout) / self._slots)
        if not isinstance(blobs, list) or len(blobs) != needed or not all(isinstance(b, bytes) for b in blobs):
            return f"{refused} it holds no list of {needed} ciphertexts under 'ciphertexts'."
        return super().check_train_reply(instruction, reply)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Sum ``num-examples`` × ciphertexts over the successful replies, as they arrive.

        Returns the unchanged (round-1) arrays and the replies' metrics; the new model is
        :attr:`encrypted_aggregate`. ``(None, None)`` when fewer than ``min_train_nodes``
        replies succeeded.
        """
        import tenseal as ts  # type: ignore[import-untyped]

        total: list[Any] | None = None
        weight_sum = 0.0
        contents: list[RecordDict] = []
        for reply in replies:
            if reply.has_error():
                continue
            weight = float(next(iter(reply.content.metric_records.values()))[self.weighted_by_key])  # type: ignore[arg-type]
            record = reply.content[REPLY_KEY]
            try:
                scaled = [ts.ckks_vector_from(self._context, blob) * weight for blob in record["ciphertexts"]]  # type: ignore[union-attr]
            except (ValueError, RuntimeError, TypeError) as exc:
                raise AggregationError(
                    f"The ciphertexts of node {reply.metadata.src_node_id} do not load with this "
                    f"public context ({exc}); every client must use the same CKKS keys."
                ) from None
            total = scaled if total is None else [a + b for a, b in zip(total, scaled, strict=True)]
            weight_sum += weight
            contents.append(RecordDict({k: v for k, v in reply.content.items() if k != REPLY_KEY}))
        if total is None or len(contents) < self.min_train_nodes:
            return None, None
        self._aggregate = ConfigRecord(
            {"layout": str(self._layout), "ciphertexts": [c.serialize() for c in total], "total-weight": weight_sum}
        )
        self.report_average(server_round, len(contents), weight_sum)
        return self._current_arrays, self.train_metrics_aggr_fn(contents, self.weighted_by_key)


def _size(layout: str | None) -> int:
    import json

    return sum(math.prod(shape) for _, _, shape in json.loads(layout or "[]"))
