"""``flwr.clientapp.mod``: Flower's client Mods, served by fedlab's own (:mod:`fedlab.mods`)."""

from __future__ import annotations

from fedlab.compat.flower.names import module_getattr
from fedlab.mods import (
    LocalDpMod,
    adaptiveclipping_mod,
    arrays_size_mod,
    fixedclipping_mod,
    message_size_mod,
)

__all__ = [
    "LocalDpMod",
    "adaptiveclipping_mod",
    "arrays_size_mod",
    "fixedclipping_mod",
    "message_size_mod",
]


__getattr__ = module_getattr(__name__, __all__)
