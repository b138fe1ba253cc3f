"""`FedProx` (Li et al., 2020): FedAvg whose clients add a proximal term to their loss."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fedlab.errors import MissingDependencyError, StrategyError
from fedlab.message import Message
from fedlab.records import ArrayRecord, ConfigRecord
from fedlab.server.grid import Grid
from fedlab.strategy.fedavg import FedAvg

__all__ = ["FedProx", "PROXIMAL_MU_KEY", "proximal_term"]

#: The config key carrying μ to the clients.
PROXIMAL_MU_KEY = "proximal-mu"


class FedProx(FedAvg):
    """FedAvg that asks clients to minimise ``F_k(w) + μ/2·‖w − w_t‖²`` locally.

    The server sends μ in every training config under ``"proximal-mu"``; clients add
    :func:`proximal_term` to their loss, which keeps their local models near the global
    model ``w_t`` they received and so limits client drift on heterogeneous data (Li,
    Sahu, Zaheer, Sanjabi, Talwalkar and Smith, 2020, "Federated optimization in
    heterogeneous networks"). The server aggregates exactly as FedAvg; with μ = 0 the
    algorithm is FedAvg.

    Parameters
    ----------
    proximal_mu
        μ ≥ 0 (default 0.01). The paper tunes it over {0.001, 0.01, 0.1, 1}.
    **fedavg
        Sampling, minimums and keys, as for :class:`FedAvg`.

    Notes
    -----
    Li et al. sample clients with probability proportional to their data and average
    uniformly; fedlab samples uniformly and averages weighted by ``num-examples``, which
    has the same expectation (and is what Flower does). The paper's tolerance for
    partial work (γ-inexact solutions) needs nothing from the server: a client simply
    reports the examples it trained on.

    Examples
    --------
    The client side, in a torch training loop::

        mu = float(msg.content["config"]["proximal-mu"])
        global_params = [p.detach().clone() for p in model.parameters()]
        for x, y in batches:
            loss = loss_fn(model(x), y) + proximal_term(model, global_params, mu)
    """

    def __init__(self, *, proximal_mu: float = 0.01, **fedavg: Any) -> None:
        super().__init__(**fedavg)
        if isinstance(proximal_mu, bool) or not isinstance(proximal_mu, int | float) or proximal_mu < 0:
            raise StrategyError(f"proximal_mu must be a number >= 0, got {proximal_mu!r}.")
        self.proximal_mu = float(proximal_mu)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """FedAvg's instructions, with ``proximal-mu`` added to the config."""
        config[PROXIMAL_MU_KEY] = self.proximal_mu
        return super().configure_train(server_round, arrays, config, grid)

    def report_average(self, server_round: int, count: int, total: float) -> None:
        """FedAvg's weighted mean (μ only changes what clients do); the report names μ."""
        self.report(server_round, aggregated=count, total_weight=total, proximal_mu=self.proximal_mu)


def proximal_term(model: Any, global_params: Any, mu: float) -> Any:
    """Return ``mu / 2 * Σ‖w − w_global‖²`` over the parameters of a torch ``model``.

    The result is a scalar tensor that carries gradients to ``model``'s parameters (its
    gradient is ``mu * (w − w_global)``); add it to the training loss.

    Parameters
    ----------
    model
        A ``torch.nn.Module``.
    global_params
        The global model the client received: a list of tensors or arrays in the order of
        ``model.parameters()`` (cheapest: clone them once, before training), or a mapping
        from parameter name to tensor/array (a state_dict or an :class:`ArrayRecord`;
        buffers in it are ignored).
    mu
        μ, e.g. ``msg.content["config"]["proximal-mu"]``.
    """
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("torch", "torch", "proximal_term") from None
    named = list(model.named_parameters())
    if isinstance(global_params, Mapping | ArrayRecord):
        missing = [name for name, _ in named if name not in global_params]
        if missing:
            raise StrategyError(
                f"global_params has no entry for the model's parameters {missing}; pass the "
                "arrays the client received (msg.content['arrays']) or a list in parameters() order."
            )
        references = [global_params[name] for name, _ in named]
    elif isinstance(global_params, Sequence):
        references = list(global_params)
        if len(references) != len(named):
            raise StrategyError(
                f"global_params holds {len(references)} entries but the model has {len(named)} "
                "parameters; pass one tensor per model.parameters(), in order."
            )
    else:
        raise StrategyError(
            f"global_params must be a list of tensors or a mapping name -> tensor, got "
            f"{type(global_params).__name__}."
        )
    total = torch.zeros((), dtype=torch.float32, device=named[0][1].device if named else "cpu")
    for (_, param), reference in zip(named, references, strict=True):
        target = _as_tensor(torch, reference).to(device=param.device, dtype=param.dtype)
        total = total + torch.sum((param - target.detach()) ** 2)
    return (float(mu) / 2.0) * total


def _as_tensor(torch: Any, value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value
    if hasattr(value, "torch"):  # a fedlab Array
        return value.torch()
    return torch.as_tensor(value)
