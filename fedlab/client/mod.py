"""Mods: functions that wrap a ClientApp handler, composed into a stack."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fedlab.context import Context
from fedlab.message import Message

__all__ = ["CallNext", "Handler", "Mod", "compose"]

#: A ClientApp handler: ``(msg, ctx) -> reply``.
Handler = Callable[[Message, Context], Message]
#: What a Mod calls to pass the message on to the next Mod or the handler.
CallNext = Callable[[Message, Context], Message]
#: A Mod: ``(msg, ctx, call_next) -> reply``. It may change the message on its way in,
#: the reply on its way out, or answer without calling ``call_next`` at all.
Mod = Callable[[Message, Context, CallNext], Message]


def compose(mods: Sequence[Mod], handler: Handler) -> Handler:
    """Return ``handler`` wrapped by ``mods``; the first Mod is the outermost.

    Examples
    --------
    >>> calls = []
    >>> def tag(name):
    ...     def mod(msg, ctx, call_next):
    ...         calls.append(name)
    ...         return call_next(msg, ctx)
    ...     return mod
    >>> wrapped = compose([tag("outer"), tag("inner")], lambda m, c: calls.append("handler") or m)
    >>> _ = wrapped(None, None)
    >>> calls
    ['outer', 'inner', 'handler']
    """
    wrapped = handler
    for mod in reversed(mods):
        wrapped = _bind(mod, wrapped)
    return wrapped


def _bind(mod: Mod, call_next: CallNext) -> Handler:
    def call(msg: Message, ctx: Context) -> Message:
        return mod(msg, ctx, call_next)

    return call
