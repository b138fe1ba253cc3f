"""`ScaffoldClient`: the client half of SCAFFOLD, with c_i kept in ``context.state``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from fedlab.context import Context
from fedlab.errors import StrategyError
from fedlab.message import Message
from fedlab.records import ArrayRecord, MetricRecord, RecordDict
from fedlab.strategy._arrays import Float64Arrays, check_matches_global, to_float64
from fedlab.strategy.scaffold import CONTROL_DELTA_KEY, SERVER_CONTROL_KEY, control_record
from fedlab.validate import check_int

__all__ = ["CLIENT_CONTROL_KEY", "ScaffoldClient"]

#: Where the client's control variate c_i lives in ``context.state``.
CLIENT_CONTROL_KEY = "scaffold-client-control"


class ScaffoldClient:
    """One SCAFFOLD training round on a client: corrected gradients and the new c_i.

    Build it from the training instruction and the node's Context; it reads the global
    model x and the server control variate c from the message, and the client's own
    control variate c_i from ``context.state`` (zeros on the first round). During local
    training correct every gradient by ``c − c_i`` (:meth:`correct` for numpy,
    :meth:`correct_gradients` for a torch model), then build the reply with
    :meth:`reply_content`, which computes c_i⁺ by option II of Karimireddy et al. and stores
    it in ``context.state`` for the next round.

    Option II assumes K steps of plain SGD with learning rate η_l on the corrected
    gradients; pass those K and η_l to :meth:`reply_content`.

    Examples
    --------
    A torch training function::

        scaffold = ScaffoldClient(msg, ctx)
        for x, y in batches:                      # K steps
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            scaffold.correct_gradients(model)     # g − c_i + c
            optimizer.step()                      # plain SGD, lr = eta_l
        return msg.reply(scaffold.reply_content(model.state_dict(), num_steps=K,
                                                learning_rate=eta_l, metrics={"num-examples": n}))
    """

    def __init__(self, msg: Message, context: Context, *, arrayrecord_key: str = "arrays") -> None:
        content = msg.content
        control = content.get(SERVER_CONTROL_KEY)
        if not isinstance(control, ArrayRecord):
            raise StrategyError(
                f"The instruction has no server control variate under {SERVER_CONTROL_KEY!r} "
                f"(it holds {sorted(content)}); ScaffoldClient works with the Scaffold strategy."
            )
        self.global_arrays: ArrayRecord = content.array_record(arrayrecord_key)
        self.arrayrecord_key = arrayrecord_key
        self._context = context
        self._wire_control = control
        self.server_control: Float64Arrays = to_float64(control)
        stored = context.state.get(CLIENT_CONTROL_KEY)
        if isinstance(stored, ArrayRecord):
            check_matches_global(context.node_id, stored, self.global_arrays)
            self.client_control: Float64Arrays = to_float64(stored)
        else:
            self.client_control = {name: np.zeros_like(v) for name, v in self.server_control.items()}
        #: ``c − c_i`` per array, the term added to every gradient.
        self.correction: Float64Arrays = {
            name: self.server_control[name] - self.client_control[name] for name in self.server_control
        }
        self._torch_cache: dict[str, Any] = {}

    def correct(self, gradients: Mapping[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        """Return ``g − c_i + c`` for each named numpy gradient (dtypes kept)."""
        out: dict[str, npt.NDArray[Any]] = {}
        for name, grad in gradients.items():
            out[name] = (np.asarray(grad) + self.correction[name]).astype(np.asarray(grad).dtype)
        return out

    def correct_gradients(self, model: Any) -> None:
        """Add ``c − c_i`` to the ``.grad`` of every parameter of a torch ``model``, in place."""
        import torch

        for name, param in model.named_parameters():
            if param.grad is None:
                continue
            term = self._torch_cache.get(name)
            if term is None or term.device != param.grad.device or term.dtype != param.grad.dtype:
                term = torch.as_tensor(self.correction[name]).to(param.grad.device, param.grad.dtype)
                self._torch_cache[name] = term
            param.grad.add_(term)

    def reply_content(
        self,
        trained: ArrayRecord | Mapping[str, Any],
        *,
        num_steps: int,
        learning_rate: float,
        metrics: Mapping[str, Any] | None = None,
    ) -> RecordDict:
        """Compute c_i⁺ = c_i − c + (x − y)/(K·η_l), keep it, and return the reply's content.

        Parameters
        ----------
        trained
            The trained model y (an ArrayRecord or a torch state_dict).
        num_steps
            K, how many local steps were taken (> 0).
        learning_rate
            η_l, the local SGD learning rate (> 0).
        metrics
            Added as the reply's MetricRecord (e.g. ``num-examples``, ``train_loss``).
        """
        num_steps = check_int("num_steps", num_steps, StrategyError, minimum=1)
        if isinstance(learning_rate, bool) or not learning_rate > 0:
            raise StrategyError(f"learning_rate must be > 0, got {learning_rate!r}.")
        model = trained if isinstance(trained, ArrayRecord) else ArrayRecord(dict(trained))
        check_matches_global(self._context.node_id, model, self.global_arrays)
        x, y = to_float64(self.global_arrays), to_float64(model)
        scale = 1.0 / (num_steps * learning_rate)
        new_control = {
            name: self.client_control[name] - self.server_control[name] + scale * (x[name] - y[name])
            for name in x
        }
        delta = {name: new_control[name] - self.client_control[name] for name in x}
        self._context.state[CLIENT_CONTROL_KEY] = ArrayRecord(dict(new_control))
        self.client_control = new_control
        return RecordDict(
            {
                self.arrayrecord_key: model,
                CONTROL_DELTA_KEY: control_record(delta, self.global_arrays),
                "metrics": MetricRecord(dict(metrics or {})),
            }
        )
