"""`ClientApp`: maps message types to the user's train/evaluate/query functions."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

from fedlab.client.mod import Handler, Mod, compose
from fedlab.context import Context
from fedlab.errors import ClientAppError
from fedlab.message import Error, ErrorCode, Message, MessageType, validate_message_type

__all__ = ["ClientApp", "Lifespan"]

#: A lifespan function: a generator that sets up, yields once, then tears down.
Lifespan = Callable[[Context], Iterator[None]]


@dataclass(frozen=True)
class _Route:
    handler: Handler
    mods: tuple[Mod, ...]


class ClientApp:
    """The client side of a federation: user functions registered per message type.

    Parameters
    ----------
    mods
        Mods wrapped around every handler of this app (the first is the outermost).

    Examples
    --------
    >>> from fedlab import Context, Message, MetricRecord, RecordDict
    >>> app = ClientApp()
    >>> @app.train()
    ... def train(msg, ctx):
    ...     return msg.reply(RecordDict({"metrics": MetricRecord({"num-examples": 3})}))
    >>> reply = app(Message(RecordDict(), dst_node_id=1, message_type="train"), Context(0, 1))
    >>> reply.content["metrics"]["num-examples"]
    3

    An exception in a handler never escapes: it becomes an error reply.

    >>> @app.evaluate()
    ... def evaluate(msg, ctx):
    ...     raise ValueError("no data")
    >>> reply = app(Message(RecordDict(), dst_node_id=1, message_type="evaluate"), Context(0, 1))
    >>> reply.error.reason.splitlines()[0]
    'ValueError: no data'
    """

    def __init__(self, mods: Sequence[Mod] = ()) -> None:
        self._mods = tuple(mods)
        self._routes: dict[str, _Route] = {}
        self._lifespan: Lifespan | None = None

    def train(self, action: str = "default", *, mods: Sequence[Mod] = ()) -> Callable[[Handler], Handler]:
        """Register a function for ``train`` messages (or ``train.<action>``)."""
        return self._register(MessageType.TRAIN, action, mods)

    def evaluate(
        self, action: str = "default", *, mods: Sequence[Mod] = ()
    ) -> Callable[[Handler], Handler]:
        """Register a function for ``evaluate`` messages (or ``evaluate.<action>``)."""
        return self._register(MessageType.EVALUATE, action, mods)

    def query(self, action: str = "default", *, mods: Sequence[Mod] = ()) -> Callable[[Handler], Handler]:
        """Register a function for ``query`` messages (or ``query.<action>``)."""
        return self._register(MessageType.QUERY, action, mods)

    def lifespan(self) -> Callable[[Lifespan], Lifespan]:
        """Register a generator run around every call: set-up, ``yield``, tear-down."""

        def decorator(fn: Lifespan) -> Lifespan:
            if self._lifespan is not None:
                raise ClientAppError("This ClientApp already has a lifespan function; register only one.")
            self._lifespan = fn
            return fn

        return decorator

    @property
    def message_types(self) -> list[str]:
        """The message types this app answers, e.g. ``["train", "evaluate"]``."""
        return list(self._routes)

    def _register(self, category: str, action: str, mods: Sequence[Mod]) -> Callable[[Handler], Handler]:
        if not isinstance(action, str):
            raise ClientAppError(
                f"@app.{category}() takes an optional action name, got {action!r}; "
                f"write @app.{category}() with parentheses."
            )
        message_type = category if action == "default" else f"{category}.{action}"
        validate_message_type(message_type)

        def decorator(fn: Handler) -> Handler:
            if not callable(fn):
                raise ClientAppError(f"@app.{category}() must decorate a function, got {fn!r}.")
            if message_type in self._routes:
                raise ClientAppError(
                    f"A handler for {message_type!r} is already registered "
                    f"({_name(self._routes[message_type].handler)}); register one function per type."
                )
            self._routes[message_type] = _Route(fn, tuple(mods))
            return fn

        return decorator

    def __call__(self, message: Message, context: Context) -> Message:
        """Handle ``message`` and return the reply; never raises for user-code errors."""
        message_type = message.metadata.message_type
        route = self._routes.get(message_type)
        if route is None:
            known = ", ".join(repr(t) for t in self._routes) or "none"
            category, _, action = message_type.partition(".")
            return message.reply(
                Error(
                    ErrorCode.UNKNOWN_MESSAGE_TYPE,
                    f"This ClientApp has no handler for {message_type!r} (registered: {known}). "
                    f"Register one with @app.{category}({repr(action) if action else ''}).",
                )
            )
        handler = compose(self._mods + route.mods, route.handler)
        try:
            with self._lifespan_for(context):
                reply = handler(message, context)
        except Exception as exc:
            return message.reply(exception_error(exc))
        return _checked_reply(message, reply)

    def _lifespan_for(self, context: Context) -> AbstractContextManager[None]:
        if self._lifespan is None:
            return nullcontext()
        return _run_lifespan(self._lifespan, context)


_DONE = object()


@contextmanager
def _run_lifespan(lifespan: Lifespan, context: Context) -> Iterator[None]:
    # The tear-down runs even when the handler raised, without the user writing
    # try/finally: the exception is not thrown into the generator (as in Flower).
    misuse = ClientAppError(
        f"The lifespan function {_name(lifespan)!r} must yield exactly once "
        "(set-up, yield, tear-down)."
    )
    steps = lifespan(context)
    if not isinstance(steps, Iterator) or next(steps, _DONE) is _DONE:
        raise misuse
    try:
        yield
    finally:
        if next(steps, _DONE) is not _DONE:
            raise misuse


def _name(fn: object) -> str:
    return str(getattr(fn, "__name__", repr(fn)))


def exception_error(exc: BaseException) -> Error:
    """Turn an exception raised by user code into an Error carrying type, message and traceback."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    head = f"{type(exc).__name__}: {exc}"
    return Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, f"{head}\n{text}")


def _checked_reply(message: Message, reply: object) -> Message:
    if not isinstance(reply, Message) or reply.metadata.reply_to_message_id != message.metadata.message_id:
        found = type(reply).__name__ if not isinstance(reply, Message) else "a Message that is not its reply"
        return message.reply(
            Error(
                ErrorCode.INVALID_REPLY,
                f"The {message.metadata.message_type!r} handler returned {found}; "
                "return msg.reply(RecordDict({...})) built from the message it received.",
            )
        )
    return reply
