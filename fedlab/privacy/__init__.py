"""Privacy on the server: central differential privacy and its accountant.

The DP wrappers (:mod:`fedlab.privacy.dp`) wrap an averaging strategy; the accountant
uses Google's ``dp-accounting``, imported only when an ε is computed
(``pip install "fedlab-sdk[privacy]"``).
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
]
