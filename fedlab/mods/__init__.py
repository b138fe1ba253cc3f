"""Client Mods: clipping and local DP for the privacy of updates, and message sizes.

:mod:`~fedlab.mods.clipping`
    :class:`FixedClippingMod` and :class:`AdaptiveClippingMod` (Flower's
    ``fixedclipping_mod``, ``adaptiveclipping_mod``): clip the training update to the
    norm a client-side DP strategy sends, and report the norm bit for adaptive clipping.
:mod:`~fedlab.mods.ckks`
    :class:`CkksMod`: encrypt training updates with CKKS (``tenseal``) and decrypt the
    aggregate :class:`fedlab.privacy.CkksFedAvg` adds without the secret key;
    :func:`ckks_keys` makes the keys.
:mod:`~fedlab.mods.local_dp`
    :class:`LocalDpMod`: clip the update and add Gaussian noise for (ε, δ) local DP, with
    :func:`gaussian_noise_std` giving the noise it adds.
:mod:`~fedlab.mods.secagg`
    :class:`SecAggPlusMod` (``secaggplus_mod``): the client side of SecAgg+, paired with
    :class:`fedlab.privacy.SecAggPlus`; the server sees only the sum of the updates.
:mod:`~fedlab.mods.size`
    :class:`MessageSizeMod` and :class:`ArraysSizeMod` (``message_size_mod``,
    ``arrays_size_mod``): report bytes received and sent as reply metrics, and refuse
    instructions above a limit.

Use them as ``ClientApp(mods=[...])`` or ``@app.train(mods=[...])``; the first Mod is
the outermost.
"""

from __future__ import annotations

from fedlab.mods.ckks import CkksKeys, CkksMod, ckks_keys
from fedlab.mods.clipping import (
    CLIPPING_NORM_KEY,
    NORM_BIT_KEY,
    AdaptiveClippingMod,
    FixedClippingMod,
    adaptiveclipping_mod,
    fixedclipping_mod,
)
from fedlab.mods.local_dp import LocalDpMod, gaussian_noise_std
from fedlab.mods.secagg import SecAggPlusMod, secaggplus_mod
from fedlab.mods.size import ArraysSizeMod, MessageSizeMod, arrays_size_mod, message_size_mod

__all__ = [
    "AdaptiveClippingMod",
    "ArraysSizeMod",
    "CLIPPING_NORM_KEY",
    "CkksKeys",
    "CkksMod",
    "FixedClippingMod",
    "LocalDpMod",
    "MessageSizeMod",
    "NORM_BIT_KEY",
    "SecAggPlusMod",
    "adaptiveclipping_mod",
    "arrays_size_mod",
    "ckks_keys",
    "fixedclipping_mod",
    "gaussian_noise_std",
    "message_size_mod",
    "secaggplus_mod",
]
