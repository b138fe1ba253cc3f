"""Privacy on the server: central differential privacy, its accountant, and SecAgg+.

The DP wrappers (:mod:`fedlab.privacy.dp`) wrap an averaging strategy; the accountant
uses Google's ``dp-accounting``, imported only when an ε is computed
(``pip install "fedlab-sdk[privacy]"``). :class:`SecAggPlus`
(:mod:`fedlab.privacy.secagg`) wraps a strategy so that the server learns only the sum of
the clients' updates; its clients use :class:`fedlab.mods.SecAggPlusMod`.
"""

from fedlab.privacy.accountant import PrivacyAccountant
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
from fedlab.privacy.secagg import SecAggError, SecAggPlus, SecAggViolation

__all__ = [
    "DPClientAdaptive",
    "DPClientFixed",
    "DPServerAdaptive",
    "DPServerFixed",
    "DifferentialPrivacyClientSideAdaptiveClipping",
    "DifferentialPrivacyClientSideFixedClipping",
    "DifferentialPrivacyServerSideAdaptiveClipping",
    "DifferentialPrivacyServerSideFixedClipping",
    "PrivacyAccountant",
    "SecAggError",
    "SecAggPlus",
    "SecAggViolation",
]
