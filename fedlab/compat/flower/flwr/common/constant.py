"""``flwr.common.constant``: ErrorCode and MessageType, as fedlab defines them."""

from __future__ import annotations

from fedlab.compat.flower.names import module_getattr
from fedlab.message import DEFAULT_TTL, ErrorCode, MessageType

__all__ = ["DEFAULT_TTL", "ErrorCode", "MessageType"]

__getattr__ = module_getattr(__name__, __all__)
