"""`ServerApp`: the server-side program of a federation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fedlab.context import Context
from fedlab.errors import ServerAppError
from fedlab.server.grid import Grid

__all__ = ["ServerApp", "ServerMain"]

#: The function a ServerApp runs: ``main(grid, context)``; it may return a Result.
ServerMain = Callable[[Grid, Context], Any]


class ServerApp:
    """The server side of a federation: one ``main(grid, context)`` function.

    Examples
    --------
    >>> app = ServerApp()
    >>> @app.main()
    ... def main(grid, context):
    ...     return len(grid.get_node_ids())
    """

    def __init__(self) -> None:
        self._main: ServerMain | None = None

    def main(self) -> Callable[[ServerMain], ServerMain]:
        """Register the function that drives the run: ``main(grid, context)``."""

        def decorator(fn: ServerMain) -> ServerMain:
            if self._main is not None:
                raise ServerAppError("This ServerApp already has a main function; register only one.")
            if not callable(fn):
                raise ServerAppError(f"@app.main() must decorate a function, got {fn!r}.")
            self._main = fn
            return fn

        return decorator

    def __call__(self, grid: Grid, context: Context) -> Any:
        """Run the registered main function and return what it returns."""
        if self._main is None:
            raise ServerAppError(
                "This ServerApp has no main function; decorate one with @app.main()."
            )
        return self._main(grid, context)
