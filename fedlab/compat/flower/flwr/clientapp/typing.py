"""``flwr.clientapp.typing``: the types of a ClientApp's handlers and Mods."""

from __future__ import annotations

from collections.abc import Callable

from fedlab.compat.flower.names import module_getattr
from fedlab.context import Context
from fedlab.message import Message

__all__ = ["ClientAppCallable", "Mod"]

#: A handler, and what a Mod calls next: ``fn(msg, context) -> reply``.
ClientAppCallable = Callable[[Message, Context], Message]
#: A Mod: ``mod(msg, context, call_next) -> reply``.
Mod = Callable[[Message, Context, ClientAppCallable], Message]

__getattr__ = module_getattr(__name__, __all__)
