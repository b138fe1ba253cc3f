"""LocalDpMod: clipping then Gaussian noise of the formula's std, tested over 1,000 draws."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedlab import ClientApp, Context, Message, RecordDict
from fedlab.errors import ConfigurationError
from fedlab.mods import LocalDpMod, gaussian_noise_std
from fedlab.records import ArrayRecord

DRAWS = 1000


def noisy_update(
    mod: LocalDpMod, update: np.ndarray, *, node: int = 3, round_: int = 1
) -> np.ndarray:
    """What ``mod`` sends back for a handler that adds ``update`` to the received zeros."""
    app = ClientApp(mods=[mod])
    app.train()(lambda msg, ctx: msg.reply(RecordDict({"arrays": ArrayRecord([update])})))
    ins = Message(
        RecordDict({"arrays": ArrayRecord([np.zeros_like(update)])}),
        node,
        "train",
        group_id=str(round_),
    )
    return app(ins, Context(0, node)).content["arrays"]["0"].numpy()  # type: ignore[index]


def test_the_classical_std_is_the_gaussian_mechanism_formula() -> None:
    assert gaussian_noise_std(2.0, 0.5, 1e-5) == 2.0 * math.sqrt(2 * math.log(1.25 / 1e-5)) / 0.5


@pytest.mark.parametrize("mechanism", ["classical", "analytic"])
def test_the_noise_over_1000_draws_has_the_formulas_std_and_mean_zero(mechanism: str) -> None:
    mod = LocalDpMod(
        clipping_norm=1.0, sensitivity=2.0, epsilon=0.8, delta=1e-5, mechanism=mechanism, seed=11
    )  # type: ignore[arg-type]
    noise = noisy_update(mod, np.zeros(DRAWS))
    sigma = gaussian_noise_std(2.0, 0.8, 1e-5, mechanism)  # type: ignore[arg-type]
    assert mod.noise_std == sigma
    assert abs(noise.std() / sigma - 1) < 0.1
    assert abs(noise.mean()) < 4 * sigma / math.sqrt(DRAWS)


def test_each_client_and_round_draws_independent_noise() -> None:
    mod = LocalDpMod(clipping_norm=1.0, sensitivity=1.0, epsilon=0.5, delta=1e-5, seed=5)
    draws = np.array(
        [
            noisy_update(mod, np.zeros(1), node=1 + i % 10, round_=1 + i // 10)[0]
            for i in range(DRAWS)
        ]
    )
    assert abs(draws.std() / mod.noise_std - 1) < 0.1
    assert abs(draws.mean()) < 4 * mod.noise_std / math.sqrt(DRAWS)
    again = LocalDpMod(clipping_norm=1.0, sensitivity=1.0, epsilon=0.5, delta=1e-5, seed=5)
    assert noisy_update(again, np.zeros(1), node=1, round_=1)[0] == draws[0]


def test_the_update_is_clipped_before_the_noise_is_added() -> None:
    update = np.linspace(-50.0, 80.0, DRAWS)  # norm far above 1
    mod = LocalDpMod(clipping_norm=1.0, sensitivity=2.0, epsilon=0.5, delta=1e-5, seed=2)
    residual = noisy_update(mod, update) - update / np.linalg.norm(update)
    assert abs(residual.std() / mod.noise_std - 1) < 0.1
    assert abs(residual.mean()) < 4 * mod.noise_std / math.sqrt(DRAWS)


@pytest.mark.parametrize("epsilon", [0.1, 0.5, 1.0, 3.0, 10.0])
def test_the_analytic_std_spends_exactly_epsilon_by_dp_accountings_gaussian_pld(
    epsilon: float,
) -> None:
    from dp_accounting.pld import privacy_loss_distribution

    sigma = gaussian_noise_std(1.5, epsilon, 1e-6, "analytic")
    pld = privacy_loss_distribution.from_gaussian_mechanism(sigma, sensitivity=1.5)
    assert pld.get_epsilon_for_delta(1e-6) == pytest.approx(epsilon, rel=1e-3)


@pytest.mark.parametrize("epsilon", [0.1, 0.5, 0.99])
def test_the_classical_std_is_safe_and_larger_than_the_analytic_one(epsilon: float) -> None:
    from dp_accounting.pld import privacy_loss_distribution

    sigma = gaussian_noise_std(1.0, epsilon, 1e-5)
    pld = privacy_loss_distribution.from_gaussian_mechanism(sigma, sensitivity=1.0)
    assert pld.get_delta_for_epsilon(epsilon) <= 1e-5
    assert sigma > gaussian_noise_std(1.0, epsilon, 1e-5, "analytic")


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"clipping_norm": 0.0}, "clipping_norm must be a finite number above 0, got 0.0"),
        ({"sensitivity": -1.0}, "sensitivity must be a finite number above 0, got -1.0"),
        ({"epsilon": float("inf")}, "epsilon must be a finite number above 0"),
        ({"epsilon": 1.0}, "use mechanism='analytic'"),
        ({"delta": 0.0}, "delta must be in (0, 1), got 0.0"),
        ({"delta": 1.0}, "delta must be in (0, 1), got 1.0"),
        ({"mechanism": "laplace"}, "mechanism must be 'classical' or 'analytic'"),
        ({"seed": -1}, "seed must be a non-negative int"),
    ],
)
def test_bad_parameters_are_refused_with_what_to_use(kwargs: dict, says: str) -> None:
    args = {"clipping_norm": 1.0, "sensitivity": 1.0, "epsilon": 0.5, "delta": 1e-5, **kwargs}
    with pytest.raises(ConfigurationError) as info:
        LocalDpMod(**args)
    assert says in str(info.value)


def test_an_epsilon_of_1_or_more_works_with_the_analytic_mechanism() -> None:
    mod = LocalDpMod(
        clipping_norm=1.0, sensitivity=2.0, epsilon=4.0, delta=1e-5, mechanism="analytic"
    )
    assert 0 < mod.noise_std < gaussian_noise_std(2.0, 0.99, 1e-5)


def test_evaluate_messages_pass_through_without_noise() -> None:
    mod = LocalDpMod(clipping_norm=1.0, sensitivity=1.0, epsilon=0.5, delta=1e-5)
    app = ClientApp(mods=[mod])
    replies: list[Message] = []
    app.evaluate()(lambda msg, ctx: replies.append(msg.reply(RecordDict())) or replies[-1])
    ins = Message(RecordDict({"arrays": ArrayRecord([np.zeros(3)])}), 3, "evaluate")
    assert app(ins, Context(0, 3)) is replies[0]
