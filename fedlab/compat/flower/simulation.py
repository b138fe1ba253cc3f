"""Flower's ``run_simulation``: the ServerApp and ClientApp run by a fedlab Federation.

``backend_config`` is Flower's: ``{"client_resources": {"num_cpus": ..., "num_gpus": ...},
"init_args": {...}}``. Flower's default Ray backend runs on fedlab's own simulation
(no Ray needed); ``backend_name`` may also name a fedlab backend (``"inline"``,
``"threads"``, ``"processes"``, ``"ray"`` for fedlab's Ray backend).
In a notebook the live dashboard shows the run; like Flower's, it returns None.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fedlab.client import ClientApp
from fedlab.compat.flower.error import FlowerCompatError, unknown_arguments
from fedlab.server import ServerApp

__all__ = ["run_simulation"]

_BACKENDS = {"ray": None, "inline": "inline", "threads": "threads", "processes": "processes"}
_CONFIG_KEYS = ("client_resources", "init_args", "actor")


def run_simulation(
    server_app: ServerApp,
    client_app: ClientApp,
    num_supernodes: int,
    backend_name: str = "ray",
    backend_config: Mapping[str, Any] | None = None,
    enable_tf_gpu_growth: bool = False,
    verbose_logging: bool = False,
    **unknown: Any,
) -> None:
    """Run ``server_app`` with ``num_supernodes`` simulated clients running ``client_app``."""
    from fedlab.federation import Federation

    unknown_arguments(
        "run_simulation",
        unknown,
        [
            "server_app",
            "client_app",
            "num_supernodes",
            "backend_name",
            "backend_config",
            "enable_tf_gpu_growth",
            "verbose_logging",
        ],
    )
    if backend_name not in _BACKENDS:
        raise FlowerCompatError(
            f"run_simulation(backend_name={backend_name!r}) is not supported; use 'ray' (Flower's "
            f"default, run on fedlab's simulation) or one of {sorted(_BACKENDS)}."
        )
    config = dict(backend_config or {})
    strange = sorted(set(config) - set(_CONFIG_KEYS))
    if strange:
        raise FlowerCompatError(
            f"run_simulation(backend_config={{{strange[0]!r}: ...}}) is not supported; "
            f"backend_config takes {', '.join(_CONFIG_KEYS)}."
        )
    backend = _BACKENDS[backend_name]
    options: dict[str, Any] = {} if backend is None else {"backend": backend}
    Federation(client_app, server_app=server_app, num_clients=num_supernodes, **options).run()
