"""Managed runs: a SuperLink and SuperNodes started, used and stopped for one run.

:func:`deploy` is what ``Federation.deploy(...)`` does (:mod:`fedlab.deploy.local.managed`);
the processes it starts on loopback are a ``LocalCluster``. :func:`shutdown` stops the
cluster that ``deploy(local=N, keep=True)`` kept running for the next run
(:mod:`fedlab.deploy.local.warm`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedlab.deploy.local.managed import deploy
    from fedlab.deploy.local.warm import shutdown

# Imported on first use: each managed process starts as ``python -m
# fedlab.deploy.local._child``, which imports this package and should cost nothing.
_HOMES = {"deploy": "fedlab.deploy.local.managed", "shutdown": "fedlab.deploy.local.warm"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'fedlab.deploy.local' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = ["deploy", "shutdown"]
