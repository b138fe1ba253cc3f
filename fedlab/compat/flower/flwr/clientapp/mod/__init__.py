"""``flwr.clientapp.mod``: Flower's client Mods, served by fedlab's own (:mod:`fedlab.mods`)."""

from __future__ import annotations

from fedlab.compat.flower.error import missing_attribute
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


def __getattr__(name: str) -> object:
    raise missing_attribute(__name__, name, __all__)
