"""``flwr.serverapp``: ServerApp and Grid, from fedlab's Flower layer."""

from __future__ import annotations

from fedlab.compat.flower.grid import Grid
from fedlab.compat.flower.names import module_getattr
from fedlab.compat.flower.serverapp import ServerApp

__all__ = ["Grid", "ServerApp"]

_HINTS = {
    "Driver": "Driver was renamed Grid; import Grid from flwr.serverapp.",
    "ServerConfig": "Flower's legacy ServerConfig is not supported; pass num_rounds to strategy.start(...).",
    "ServerAppComponents": "Flower's legacy server_fn API is not supported; use @app.main().",
    "PrivacyAccountant": "use fedlab's own accounting in fedlab.privacy.accountant.",
}


__getattr__ = module_getattr(__name__, [*__all__, "strategy"], _HINTS)
