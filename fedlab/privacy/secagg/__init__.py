"""SecAgg+ secure aggregation (Bell et al. 2020): the server sees only the sum of updates.

Server: wrap a strategy in :class:`SecAggPlus`. Clients: add
:func:`fedlab.mods.secagg.secaggplus_mod` to the ClientApp's mods. The stages, the
cryptography, the quantisation and its error bound are documented in
:mod:`~fedlab.privacy.secagg.protocol`, :mod:`~fedlab.privacy.secagg.crypto`,
:mod:`~fedlab.privacy.secagg.shamir` and :mod:`~fedlab.privacy.secagg.quantize`.
"""

from fedlab.privacy.secagg.protocol import SecAggError, SecAggViolation
from fedlab.privacy.secagg.strategy import SecAggPlus

__all__ = ["SecAggError", "SecAggPlus", "SecAggViolation"]
