"""What a Federation checks in its arguments before any client runs (private).

Each check fails with a :class:`~fedlab.errors.FederationError` that names the argument
the user wrote (``config['w']``, ``evaluate_fn``), not the record it would have become
later, and says how to fix it. :meth:`fedlab.run.RunSpec.build` calls them in order.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from fedlab.client import ClientApp
from fedlab.dashboard.display import DISPLAYS
from fedlab.errors import FederationError, RecordError
from fedlab.records import ConfigRecord
from fedlab.server import ServerApp
from fedlab.simulation import BACKENDS, missing_backend_members
from fedlab.strategy import FedAvg, Strategy

__all__ = [
    "check_config",
    "check_evaluate_fn",
    "check_keep",
    "check_parts",
    "check_settings",
    "settle_client_evaluation",
]

#: The names ``display=`` accepts.

#: What the run's first line says when federated evaluation was left out by default.
SKIPPED_EVALUATION = "federated evaluation skipped: the ClientApp has no @app.evaluate()"

_ALLOWED = "int, float, str, bytes, bool or a list of one of them"


def check_parts(
    client_app: object, strategy: object, server_app: object, initial_arrays: object
) -> None:
    """Refuse anything but a ClientApp with exactly one of a Strategy (and its model) or a ServerApp."""
    if not isinstance(client_app, ClientApp):
        raise FederationError(
            f"client_app must be a fedlab.ClientApp, got {type(client_app).__name__}."
        )
    if (strategy is None) == (server_app is None):
        raise FederationError(
            "Give exactly one of strategy=... (e.g. FedAvg()) or server_app=... (a ServerApp)."
        )
    if strategy is not None and not isinstance(strategy, Strategy):
        raise FederationError(f"strategy must be a fedlab Strategy, got {type(strategy).__name__}.")
    if server_app is not None and not isinstance(server_app, ServerApp):
        raise FederationError(
            f"server_app must be a fedlab ServerApp, got {type(server_app).__name__}."
        )
    if strategy is not None and initial_arrays is None:
        raise FederationError(
            "A federation with a strategy needs initial_arrays, the starting model, e.g. "
            "initial_arrays=ArrayRecord(model.state_dict())."
        )


def check_settings(
    num_clients: object, backend: object, checkpoint_dir: object, strategy: object, display: object
) -> None:
    """Refuse a number of clients, backend, checkpointing or display the run cannot have."""
    if not isinstance(num_clients, int) or isinstance(num_clients, bool) or num_clients < 1:
        raise FederationError(f"num_clients must be a positive int, got {num_clients!r}.")
    if isinstance(backend, str) and backend not in BACKENDS:
        raise FederationError(
            f"Unknown backend {backend!r}; choose one of {', '.join(map(repr, BACKENDS))}."
        )
    if not isinstance(backend, str) and (missing := missing_backend_members(backend)):
        raise FederationError(
            f"backend must be a backend name ({', '.join(map(repr, BACKENDS))}) or a backend "
            "instance such as fedlab.simulation.ThreadBackend(4), got "
            f"{type(backend).__name__}, which lacks {', '.join(missing)} of the "
            "fedlab.simulation.Backend protocol."
        )
    if checkpoint_dir is not None and strategy is None:
        raise FederationError(
            "checkpoint_dir needs a strategy: a ServerApp's own loop cannot be checkpointed; "
            "pass strategy=... or drop checkpoint_dir."
        )
    if display not in DISPLAYS:
        names = ", ".join(map(repr, DISPLAYS[:-1]))
        raise FederationError(f"display must be {names} or {DISPLAYS[-1]!r}, got {display!r}.")


def check_evaluate_fn(evaluate_fn: object) -> None:
    """Refuse an ``evaluate_fn`` that cannot be called as ``evaluate_fn(server_round, arrays)``."""
    if not callable(evaluate_fn):
        raise FederationError(
            "evaluate_fn must be a function evaluate_fn(server_round, arrays) returning a "
            f"MetricRecord, a dict of metrics or None; got {type(evaluate_fn).__name__}."
        )
    try:
        signature = inspect.signature(evaluate_fn)
    except (TypeError, ValueError):  # some builtins have no signature: the call will tell
        return
    try:
        signature.bind(0, None)
    except TypeError:
        name = getattr(evaluate_fn, "__name__", type(evaluate_fn).__name__)
        raise FederationError(
            f"evaluate_fn is called as evaluate_fn(server_round, arrays), but {name}{signature} "
            "cannot be called with those two arguments. Write it as "
            "def evaluate(server_round, arrays): ... and return a MetricRecord, a dict of "
            "metrics such as {'loss': loss, 'accuracy': accuracy}, or None."
        ) from None


def check_config(argument: str, config: object) -> None:
    """Refuse a dict ``config`` whose values a ConfigRecord cannot hold, saying how to fix each.

    A ConfigRecord is checked when it is built, and a function of the round only when it
    is called, so only mappings are looked at here.
    """
    if isinstance(config, ConfigRecord) or not isinstance(config, Mapping):
        return
    for key, value in config.items():
        if not isinstance(key, str):
            raise FederationError(
                f"{argument} keys must be str, got {type(key).__name__} ({key!r}); "
                f"use {str(key)!r} instead."
            )
        try:
            ConfigRecord({key: value})
        except RecordError as exc:
            raise FederationError(_config_fix(argument, key, value, exc)) from None


def _config_fix(argument: str, key: str, value: Any, exc: RecordError) -> str:
    where = f"{argument}[{key!r}]"
    if value is None:
        return (
            f"{where} is None, and config values cannot be None ({_ALLOWED}): leave the key "
            "out, or send a value such as '' or 0 that the clients read as unset."
        )
    if isinstance(value, Mapping):
        inner = next(iter(value), "name")
        return (
            f"{where} is a dict, and config values cannot nest ({_ALLOWED}): flatten it into "
            f"keys of their own, e.g. {f'{key}.{inner}'!r}: ..., one per entry."
        )
    shape = getattr(value, "shape", None)
    if shape is not None and callable(getattr(value, "tolist", None)):
        as_list = "value.tolist()" if len(shape) <= 1 else "value.ravel().tolist()"
        return (
            f"{where} is an array of shape {tuple(shape)}, and config values "
            f"are {_ALLOWED}: send it as a list, {argument}={{{key!r}: {as_list}}}, or send "
            "arrays to the clients through initial_arrays."
        )
    detail = str(exc).split("; ", 1)[-1]
    return f"{where} is a {type(value).__name__}, which config cannot hold; {detail}"


def settle_client_evaluation(strategy: Strategy | None, client_app: ClientApp) -> str:
    """Decide whether clients evaluate; return the note for the run's first line ("" for none).

    A strategy left at its default skips federated evaluation when the ClientApp cannot
    evaluate; one asked explicitly to evaluate is refused with the fix.
    """
    can_evaluate = any(t.split(".")[0] == "evaluate" for t in client_app.message_types)
    asked = float(getattr(strategy, "fraction_evaluate", 0.0))
    settle: Callable[[bool], bool] | None = (
        strategy.evaluate_on_clients if isinstance(strategy, FedAvg)
        else getattr(strategy, "evaluate_on_clients", None)  # a wrapper passes it on
    )
    evaluates = settle(can_evaluate) if settle is not None else asked > 0
    if evaluates and not can_evaluate:
        raise FederationError(
            f"{type(strategy).__name__} asks clients to evaluate (fraction_evaluate={asked}) "
            "but the ClientApp has no @app.evaluate() function; register one, or pass "
            "fraction_evaluate=0.0 to the strategy."
        )
    return SKIPPED_EVALUATION if asked > 0 and not evaluates else ""


def check_keep(keep: object, checkpoint_dir: object) -> None:
    """Refuse a ``checkpoint_keep`` that is not a choice, or ``"all"`` with nowhere to keep them."""
    if keep not in ("latest", "all"):
        raise FederationError(
            f"checkpoint_keep must be 'latest' or 'all', got {keep!r}; 'all' keeps every "
            "round's checkpoint so that fork(round=k) can start from any of them."
        )
    if keep == "all" and checkpoint_dir is None:
        raise FederationError(
            "checkpoint_keep='all' needs checkpoint_dir=...: the checkpoints of every round are "
            "kept there, in rounds/round-<k>/."
        )
