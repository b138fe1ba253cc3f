"""The accountant gives dp-accounting's own ε, and the published DP-SGD MNIST number."""

from __future__ import annotations

import math
import subprocess
import sys

import dp_accounting
import pytest

from fedlab.errors import StrategyError
from fedlab.privacy import PrivacyAccountant


@pytest.mark.parametrize(("q", "z", "steps", "delta"), [(0.01, 1.1, 1000, 1e-5), (0.1, 0.8, 50, 1e-6)])
def test_poisson_rdp_and_pld_equal_dp_accounting_for_the_same_q_z_steps_delta(
    q: float, z: float, steps: int, delta: float
) -> None:
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z)), steps
    )
    for method, reference in (
        ("rdp", dp_accounting.rdp.RdpAccountant()),
        ("pld", dp_accounting.pld.PLDAccountant()),
    ):
        accountant = PrivacyAccountant(z, delta, sampling="poisson", method=method)  # type: ignore[arg-type]
        accountant.step(sample_size=round(q * 1000), population=1000, count=steps)
        assert accountant.epsilon() == reference.compose(event).get_epsilon(delta)


def test_fixed_size_sampling_is_dp_accountings_sampling_without_replacement_under_replace_one() -> None:
    m, n, z, steps, delta = 10, 100, 1.2, 30, 1e-5
    accountant = PrivacyAccountant(z, delta)  # fixed-size by default, as the wrappers sample
    for _ in range(steps):
        accountant.step(m, n)
    # Replacing one client moves the clipped sum by up to 2C: multiplier z / 2.
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.SampledWithoutReplacementDpEvent(n, m, dp_accounting.GaussianDpEvent(z / 2)), steps
    )
    reference = dp_accounting.rdp.RdpAccountant(
        neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE
    )
    assert accountant.steps == steps
    assert accountant.epsilon() == reference.compose(event).get_epsilon(delta)


def _classic_rdp_epsilon(q: float, sigma: float, steps: int, delta: float) -> float:
    """ε by the RDP bound of Mironov et al. 2019 (integer orders) and Mironov 2017, Prop. 3.

    This is the conversion TF Privacy used when it published its tutorial numbers;
    dp-accounting now converts with a tighter bound (Canonne et al. 2020), so its ε is lower.
    """
    best = math.inf
    for alpha in range(2, 65):
        terms = [
            math.lgamma(alpha + 1) - math.lgamma(k + 1) - math.lgamma(alpha - k + 1)
            + (alpha - k) * math.log1p(-q) + k * math.log(q) + (k * k - k) / (2 * sigma**2)
            for k in range(alpha + 1)
        ]
        top = max(terms)
        log_a = top + math.log(sum(math.exp(t - top) for t in terms))
        best = min(best, steps * log_a / (alpha - 1) + math.log(1 / delta) / (alpha - 1))
    return best


def test_the_published_mnist_dp_sgd_epsilon() -> None:
    # TensorFlow Privacy, tutorials/README.md ("Select Parameters", first row): MNIST, 60,000
    # examples, batch 256, noise multiplier 1.12, 60 epochs, delta 1e-5: "Privacy eps 2.92".
    q, sigma, steps, delta = 256 / 60000, 1.12, 60 * 60000 // 256, 1e-5
    assert round(_classic_rdp_epsilon(q, sigma, steps, delta), 2) == 2.92
    accountant = PrivacyAccountant(sigma, delta, sampling="poisson")
    accountant.step(256, 60000, count=steps)
    # dp-accounting's tighter conversion of the same RDP curve (measured: 2.5186).
    assert accountant.epsilon() == pytest.approx(2.5186, abs=1e-4)
    assert accountant.epsilon() < 2.92


def test_no_noise_is_infinite_epsilon_and_no_round_is_zero() -> None:
    accountant = PrivacyAccountant(0.0, 1e-5)
    assert accountant.epsilon() == 0.0
    accountant.step(5, 10)
    assert accountant.epsilon() == math.inf


def test_pld_has_no_fixed_size_sampling_and_says_what_to_use() -> None:
    with pytest.raises(StrategyError, match="method='rdp'"):
        PrivacyAccountant(1.0, 1e-5, sampling="fixed-size", method="pld")


def test_import_fedlab_and_fedlab_privacy_do_not_load_dp_accounting() -> None:
    code = "import sys, fedlab, fedlab.privacy; print('dp_accounting' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
