"""Flower's ``ClientApp``: fedlab's, whose handlers and Mods see this layer's messages."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fedlab.client import ClientApp as _ClientApp
from fedlab.client import Mod
from fedlab.compat.flower.error import FlowerCompatError, unknown_arguments
from fedlab.compat.flower.message import as_flower_context, as_flower_message
from fedlab.context import Context
from fedlab.message import Message

__all__ = ["ClientApp"]

_LEGACY = (
    "Flower's legacy client_fn/NumPyClient API is not supported; register Message-API "
    "handlers instead: app = ClientApp(); @app.train() def train(msg, context): ..."
)


class ClientApp(_ClientApp):
    """A ClientApp as Flower apps write it: ``ClientApp(mods=[...])`` and ``@app.train()``.

    Every message reaches the Mods and the handler as a ``flwr.app.Message`` whose records
    have Flower's methods (``to_numpy_ndarrays()``...), and the records in
    ``context.state`` are of those types too.
    """

    def __init__(
        self,
        client_fn: Callable[..., Any] | None = None,
        mods: Sequence[Mod] | None = None,
        **unknown: Any,
    ) -> None:
        unknown_arguments("ClientApp", unknown, ["mods"], {"client": _LEGACY})
        if client_fn is not None:
            raise FlowerCompatError(
                f"ClientApp(client_fn=...) is not supported by fedlab's Flower compatibility layer: {_LEGACY}"
            )
        super().__init__(mods=tuple(mods or ()))

    def __call__(self, message: Message, context: Context) -> Message:
        """Handle ``message`` (as a Flower Message) and return the reply."""
        return super().__call__(as_flower_message(message), as_flower_context(context))
