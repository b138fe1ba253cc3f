"""Flower's ``ServerApp``: fedlab's, whose ``main`` gets this layer's Grid."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fedlab.compat.flower.error import FlowerCompatError, unknown_arguments
from fedlab.compat.flower.grid import as_flower_grid
from fedlab.compat.flower.message import as_flower_context
from fedlab.context import Context
from fedlab.errors import ServerAppError
from fedlab.server import Grid
from fedlab.server import ServerApp as _ServerApp

__all__ = ["ServerApp"]

_LEGACY = (
    "Flower's legacy server_fn/ServerConfig API is not supported; write "
    "app = ServerApp() and @app.main() def main(grid, context): strategy.start(grid=grid, ...)."
)
#: A lifespan function of a ServerApp: set-up, ``yield``, tear-down around ``main``.
ServerLifespan = Callable[[Context], Iterator[None]]


class ServerApp(_ServerApp):
    """A ServerApp as Flower apps write it: ``ServerApp()`` and ``@app.main()``."""

    def __init__(
        self,
        server_fn: Callable[..., Any] | None = None,
        config: Any = None,
        strategy: Any = None,
        client_manager: Any = None,
        **unknown: Any,
    ) -> None:
        unknown_arguments("ServerApp", unknown, [])
        for name, value in (
            ("server_fn", server_fn),
            ("config", config),
            ("strategy", strategy),
            ("client_manager", client_manager),
        ):
            if value is not None:
                raise FlowerCompatError(
                    f"ServerApp({name}=...) is not supported by fedlab's Flower compatibility layer: {_LEGACY}"
                )
        super().__init__()
        self._lifespan: ServerLifespan | None = None

    def lifespan(self) -> Callable[[ServerLifespan], ServerLifespan]:
        """Register a generator run around ``main``: set-up, ``yield``, tear-down."""

        def decorator(fn: ServerLifespan) -> ServerLifespan:
            if self._lifespan is not None:
                raise ServerAppError(
                    "This ServerApp already has a lifespan function; register only one."
                )
            self._lifespan = fn
            return fn

        return decorator

    def __call__(self, grid: Grid, context: Context) -> Any:
        """Run ``main`` with a Flower Grid over ``grid``."""
        flower_grid = as_flower_grid(grid)
        context = as_flower_context(context)
        if self._lifespan is None:
            return super().__call__(flower_grid, context)
        steps = self._lifespan(context)
        next(steps)
        try:
            return super().__call__(flower_grid, context)
        finally:
            next(steps, None)
