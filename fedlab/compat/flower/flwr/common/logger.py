"""``flwr.common.logger``: ``log(level, msg, *args)`` on the ``flwr`` logger."""

from __future__ import annotations

from fedlab.compat.flower.logger import FLOWER_LOGGER, log
from fedlab.compat.flower.names import module_getattr

__all__ = ["FLOWER_LOGGER", "log"]


__getattr__ = module_getattr(__name__, __all__)
