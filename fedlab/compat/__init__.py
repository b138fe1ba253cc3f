"""Compatibility layers that let code written for other frameworks run on fedlab.

:mod:`fedlab.compat.flower`
    Flower's Message API (``flwr.app``, ``flwr.clientapp``, ``flwr.serverapp``, ...) served
    by an import hook, so a Flower app runs on fedlab unchanged.
"""

from __future__ import annotations

__all__: list[str] = []
