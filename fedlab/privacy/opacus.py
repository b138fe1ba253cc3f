"""DP-SGD on PyTorch clients with Opacus, with a privacy accountant per client across rounds.

Recipe
------
In the ClientApp's train handler, build the model, optimizer and data loader as usual,
hand them to :func:`make_private` with the client's ``ctx.state``, train with what it
returns, then save the accountant and report ε::

    @app.train()
    def train(msg, ctx):
        net = Net()
        net.load_state_dict(msg.content["arrays"].to_torch_state_dict())
        loader = DataLoader(my_partition, batch_size=32)
        private = make_private(
            net, torch.optim.SGD(net.parameters(), lr=0.1), loader,
            noise_multiplier=1.0, max_grad_norm=1.0, state=ctx.state,
        )
        for x, y in private.data_loader:          # Poisson-sampled batches
            private.optimizer.zero_grad()
            loss_fn(private.model(x), y).backward()
            private.optimizer.step()              # clips per example, adds noise
        private.save_state()                      # the accountant survives to the next round
        return msg.reply(RecordDict({
            "arrays": ArrayRecord(net.state_dict()),   # the original net: same weights
            "metrics": MetricRecord({"num-examples": len(my_partition),
                                     "dp-epsilon": private.epsilon(delta=1e-5)}),
        }))

Each client accounts for its own data only: ε is the privacy of one example of *that*
client's dataset against everything its replies reveal, over all rounds it took part in
(the accountant's history lives in ``ctx.state`` under ``state_key``, never leaves the
node, and grows by the steps of each round). It is record-level local DP-SGD, not the
user-level guarantee of central DP (:mod:`fedlab.privacy.dp`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

from fedlab.errors import ConfigurationError, MissingDependencyError
from fedlab.records import ConfigRecord, RecordDict

__all__ = ["PrivateTraining", "make_private"]

_ACCOUNTANTS = ("rdp", "prv", "gdp")
_HOOK_WARNING = "Full backward hook is firing when gradients are computed with respect to module outputs"


@dataclass
class PrivateTraining:
    """What :func:`make_private` returns: train with these, then save and report ε.

    Attributes
    ----------
    model
        The model wrapped to compute per-example gradients (its weights are the original
        model's: read them from the original).
    optimizer
        The DP optimizer: clips each example's gradient to ``max_grad_norm`` and adds
        Gaussian noise of std ``noise_multiplier * max_grad_norm`` at each step.
    data_loader
        The loader with Poisson sampling (each example in a batch with probability
        ``batch_size / len(dataset)``), which the accounting assumes.
    engine
        The Opacus ``PrivacyEngine``; ``engine.accountant`` holds this client's history,
        restored from the state.
    state, state_key
        Where :meth:`save_state` keeps the accountant's history.
    """

    model: Any
    optimizer: Any
    data_loader: Any
    engine: Any
    state: RecordDict | None = None
    state_key: str = "dp-sgd"
    accountant: str = field(default="rdp")

    def epsilon(self, delta: float) -> float:
        """ε spent so far by this client (all rounds, all steps) at ``delta``."""
        if not self.engine.accountant.history:
            return 0.0
        return float(self.engine.accountant.get_epsilon(delta=delta))

    @property
    def steps(self) -> int:
        """DP-SGD steps this client took so far, over all rounds."""
        return sum(int(steps) for _, _, steps in self.engine.accountant.history)

    def save_state(self) -> None:
        """Write the accountant's history into the state given to :func:`make_private`."""
        if self.state is None:
            raise ConfigurationError(
                "make_private() was given no state; pass state=ctx.state so the accountant "
                "survives between rounds."
            )
        history = self.engine.accountant.history
        if not history:
            return
        self.state[self.state_key] = ConfigRecord({
            "accountant": self.accountant,
            "noise-multipliers": [float(z) for z, _, _ in history],
            "sample-rates": [float(q) for _, q, _ in history],
            "steps": [int(n) for _, _, n in history],
        })


def _restore(state: RecordDict | None, key: str, accountant: str) -> list[tuple[float, float, int]]:
    record = None if state is None else state.get(key)
    if record is None:
        return []
    if not isinstance(record, ConfigRecord) or record.get("accountant") != accountant:
        raise ConfigurationError(
            f"ctx.state[{key!r}] holds no {accountant!r} accountant history; use another "
            "state_key, or the accountant the earlier rounds used."
        )
    zs: list[float] = list(record["noise-multipliers"])  # type: ignore[arg-type]
    qs: list[float] = list(record["sample-rates"])  # type: ignore[arg-type]
    ns: list[int] = list(record["steps"])  # type: ignore[arg-type]
    return [(float(z), float(q), int(n)) for z, q, n in zip(zs, qs, ns, strict=True)]


def make_private(
    model: Any,
    optimizer: Any,
    data_loader: Any,
    *,
    noise_multiplier: float,
    max_grad_norm: float,
    state: RecordDict | None = None,
    state_key: str = "dp-sgd",
    accountant: str = "rdp",
    poisson_sampling: bool = True,
    secure_mode: bool = False,
) -> PrivateTraining:
    """Make a client's local training DP-SGD (Abadi et al. 2016) with Opacus.

    Parameters
    ----------
    model, optimizer, data_loader
        The torch model, its optimizer, and the loader of the client's training data.
    noise_multiplier
        z: the noise std is ``z * max_grad_norm`` on the sum of clipped gradients.
    max_grad_norm
        C: each example's gradient is clipped to this L2 norm.
    state
        The client's ``ctx.state``: the accountant's history from earlier rounds is read
        from it (and written back by :meth:`PrivateTraining.save_state`).
    state_key
        Name of the ConfigRecord holding that history.
    accountant
        ``"rdp"`` (default), ``"prv"`` or ``"gdp"``: Opacus' accountant for the Poisson
        subsampled Gaussian mechanism.
    poisson_sampling
        Keep True: the accountants assume Poisson sampling.
    secure_mode
        Opacus' cryptographically secure noise (slower). Off by default, as in Opacus: the
        noise then comes from torch's ordinary generator, fine for experiments; turn it on
        for a production run (Opacus' warning about it is not repeated each round).

    Raises
    ------
    ConfigurationError
        If Opacus cannot compute per-example gradients for the model (e.g. BatchNorm),
        naming the layers and the fix; or for bad settings.
    MissingDependencyError
        If opacus is not installed.
    """
    try:
        from opacus import PrivacyEngine  # type: ignore[import-untyped]
        from opacus.validators import ModuleValidator  # type: ignore[import-untyped]
    except ImportError:
        raise MissingDependencyError("opacus", "privacy", "DP-SGD (make_private)") from None
    if accountant not in _ACCOUNTANTS:
        raise ConfigurationError(f"accountant must be one of {_ACCOUNTANTS}, got {accountant!r}.")
    if not noise_multiplier >= 0 or not max_grad_norm > 0:
        raise ConfigurationError(
            f"noise_multiplier must be ≥ 0 and max_grad_norm > 0, got {noise_multiplier!r} "
            f"and {max_grad_norm!r}."
        )
    problems = ModuleValidator.validate(model, strict=False)
    if problems:
        listed = "; ".join(str(p) for p in problems)
        raise ConfigurationError(
            f"Opacus cannot train this model with DP-SGD: {listed}. Replace those layers "
            "(e.g. BatchNorm by GroupNorm: model = opacus.validators.ModuleValidator.fix(model), "
            "before building the optimizer)."
        )
    history = _restore(state, state_key, accountant)
    with warnings.catch_warnings():
        # Opacus warns on every engine that secure_mode is off; the parameter says so once.
        warnings.filterwarnings("ignore", message="Secure RNG turned off", category=UserWarning)
        engine = PrivacyEngine(accountant=accountant, secure_mode=secure_mode)
    engine.accountant.history = list(history)
    # Opacus' per-example hooks make torch warn, at every backward pass, about the first
    # layer (its input needs no gradient): harmless, and silenced for that message only.
    warnings.filterwarnings("ignore", message=_HOOK_WARNING, category=UserWarning)
    private_model, private_optimizer, private_loader = engine.make_private(
        module=model,
        optimizer=optimizer,
        data_loader=data_loader,
        noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm,
        poisson_sampling=poisson_sampling,
    )
    return PrivateTraining(
        model=private_model,
        optimizer=private_optimizer,
        data_loader=private_loader,
        engine=engine,
        state=state,
        state_key=state_key,
        accountant=accountant,
    )
