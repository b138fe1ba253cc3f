"""Privacy on the server: central differential privacy, its accountant, and SecAgg+.

The DP wrappers (:mod:`fedlab.privacy.dp`) wrap an averaging strategy; the accountant
uses Google's ``dp-accounting``, imported only when an ε is computed
(``pip install "fedlab-sdk[privacy]"``). :class:`SecAggPlus`
(:mod:`fedlab.privacy.secagg`) wraps a strategy so that the server learns only the sum of
the clients' updates; its clients use :class:`fedlab.mods.SecAggPlusMod`.
:class:`CkksFedAvg` (:mod:`fedlab.privacy.ckks`) adds CKKS-encrypted updates without the
secret key (clients: :class:`fedlab.mods.CkksMod`), and :func:`make_private`
(:mod:`fedlab.privacy.opacus`) makes a PyTorch client's training DP-SGD with Opacus.
"""

from fedlab.privacy.accountant import PrivacyAccountant
from fedlab.privacy.ckks import CkksFedAvg
from fedlab.privacy.dp import (
    DifferentialPrivacyClientSideAdaptiveClipping,
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideAdaptiveClipping,
    DifferentialPrivacyServerSideFixedClipping,
    DPClientAdaptive,
    DPClientFixed,
    DPServerAdaptive,
    DPServerFixed,
)
from fedlab.privacy.opacus import PrivateTraining, make_private
from fedlab.privacy.secagg import SecAggError, SecAggPlus, SecAggViolation

__all__ = [
    "CkksFedAvg",
    "DPClientAdaptive",
    "DPClientFixed",
    "DPServerAdaptive",
    "DPServerFixed",
    "DifferentialPrivacyClientSideAdaptiveClipping",
    "DifferentialPrivacyClientSideFixedClipping",
    "DifferentialPrivacyServerSideAdaptiveClipping",
    "DifferentialPrivacyServerSideFixedClipping",
    "PrivacyAccountant",
    "PrivateTraining",
    "SecAggError",
    "SecAggPlus",
    "SecAggViolation",
    "make_private",
]
