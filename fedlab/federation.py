"""`Federation`: the front door. Wrap a ClientApp and a Strategy, then ``run()``."""

from __future__ import annotations

import asyncio
import contextvars
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from fedlab._driver import AsyncInbox, BlockingInbox, Inbox, drive_blocking
from fedlab.client import ClientApp
from fedlab.context import Context, UserConfig
from fedlab.errors import FederationError
from fedlab.events import Event, EventBus, RunFinished, RunStarted, Subscriber
from fedlab.history import History
from fedlab.records import ArrayRecord
from fedlab.server import Result, ServerApp
from fedlab.simulation import BACKENDS, SimulationGrid
from fedlab.strategy import ConfigSource, EvaluateFn, Strategy

__all__ = ["Display", "Federation"]

#: How a run shows progress: chosen from the environment, or forced.
Display = Literal["auto", "rich", "plain", "none"]


class Federation:
    """A ClientApp, a Strategy (or a ServerApp) and a number of clients: one federation.

    Parameters
    ----------
    client_app
        The code every client runs.
    strategy
        How the server samples clients and aggregates; give this or ``server_app``.
    server_app
        A full server program (``@app.main()``) instead of a strategy.
    num_clients
        How many simulated clients; client *i* gets ``node_config["partition-id"] == i``.
    initial_arrays
        The global model before round 1 (an ArrayRecord, a state_dict or a list of arrays).
    config
        Sent to the clients every round in ``msg.content["config"]`` (a dict, ConfigRecord,
        or a function of the round); its scalar values are also each node's ``run_config``.
    evaluate_fn
        Server-side evaluation ``evaluate_fn(round, arrays) -> metrics``, after every round.
    seed
        Makes node ids, client sampling and thus a run with the inline backend reproducible.
    backend
        ``"inline"`` (sequential, deterministic) or ``"threads"``.
    timeout
        Seconds to wait for a round's replies; slower clients count as failed.
    display
        ``"auto"`` picks a live view from ``FEDLAB_DISPLAY`` and the terminal; or force one.

    Examples
    --------
    >>> import numpy as np, fedlab as fl
    >>> app = fl.ClientApp()
    >>> @app.train()
    ... def train(msg, ctx):
    ...     w = msg.content["arrays"].to_numpy()[0] + 1.0
    ...     return msg.reply(fl.RecordDict({"arrays": fl.ArrayRecord([w]),
    ...                                     "metrics": fl.MetricRecord({"num-examples": 1})}))
    >>> fed = fl.Federation(app, strategy=fl.strategy.FedAvg(fraction_evaluate=0.0), num_clients=3,
    ...                     initial_arrays=[np.zeros(2)], seed=0, display="none")
    >>> fed.run(rounds=2).arrays.to_numpy()[0]
    array([2., 2.])
    """

    def __init__(
        self,
        client_app: ClientApp,
        strategy: Strategy | None = None,
        *,
        server_app: ServerApp | None = None,
        num_clients: int = 10,
        initial_arrays: ArrayRecord | Mapping[str, Any] | Sequence[Any] | None = None,
        config: ConfigSource | None = None,
        evaluate_config: ConfigSource | None = None,
        evaluate_fn: EvaluateFn | None = None,
        run_config: UserConfig | None = None,
        node_configs: Sequence[Mapping[str, bool | int | float | str]] | None = None,
        seed: int | None = None,
        backend: str = "inline",
        max_workers: int | None = None,
        timeout: float | None = 3600.0,
        display: Display = "auto",
    ) -> None:
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
            raise FederationError(f"server_app must be a fedlab ServerApp, got {type(server_app).__name__}.")
        if strategy is not None and initial_arrays is None:
            raise FederationError(
                "A federation with a strategy needs initial_arrays, the starting model, e.g. "
                "initial_arrays=ArrayRecord(model.state_dict())."
            )
        evaluates = getattr(strategy, "fraction_evaluate", 0.0)
        if evaluates and not any(t.split(".")[0] == "evaluate" for t in client_app.message_types):
            raise FederationError(
                f"{type(strategy).__name__} asks clients to evaluate (fraction_evaluate={evaluates}) "
                "but the ClientApp has no @app.evaluate() function; register one, or pass "
                "fraction_evaluate=0.0 to the strategy."
            )
        if not isinstance(num_clients, int) or isinstance(num_clients, bool) or num_clients < 1:
            raise FederationError(f"num_clients must be a positive int, got {num_clients!r}.")
        if backend not in BACKENDS:
            raise FederationError(
                f"Unknown backend {backend!r}; choose one of {', '.join(map(repr, BACKENDS))}."
            )
        if display not in ("auto", "rich", "plain", "none"):
            raise FederationError(f"display must be 'auto', 'rich', 'plain' or 'none', got {display!r}.")
        self.client_app = client_app
        self.strategy = strategy
        self.server_app = server_app
        self.num_clients = num_clients
        self.initial_arrays = (
            initial_arrays
            if isinstance(initial_arrays, ArrayRecord) or initial_arrays is None
            else ArrayRecord(initial_arrays)
        )
        self.config = config
        self.evaluate_config = evaluate_config
        self.evaluate_fn = evaluate_fn
        self.run_config: UserConfig = dict(run_config) if run_config is not None else _scalars(config)
        self.node_configs = node_configs
        self.seed = seed
        self.backend = backend
        self.max_workers = max_workers
        self.timeout = timeout
        self.display = display
        self._subscribers: list[Subscriber] = []
        self._run: _Run | None = None
        self._runs_started = 0

    # -- observing ------------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber(event)`` for every event of later runs, on the caller's thread."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber) if subscriber in self._subscribers else None

    @property
    def history(self) -> History | None:
        """The History of the latest run (live while it runs), or None before the first."""
        return self._run.history if self._run is not None else None

    # -- running --------------------------------------------------------------------------

    def run(self, rounds: int = 3) -> Result:
        """Run the federation for ``rounds`` rounds and return its :class:`Result`.

        Blocks until done. Works in a script and inside a notebook whose event loop is
        already running; there a kernel interrupt stops the run cleanly after the current
        round (interrupt twice to abort at once).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.run_async(rounds))
        return drive_blocking(self._drive(rounds, BlockingInbox()))

    async def run_async(self, rounds: int = 3) -> Result:
        """Run the federation without blocking the event loop: ``await fed.run_async()``."""
        return await self._drive(rounds, AsyncInbox())

    def start(self, rounds: int = 3) -> asyncio.Task[Result]:
        """Start a run in the background of the running loop and return its task at once."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise FederationError(
                "start() needs a running event loop, as in a notebook; in a script use run()."
            ) from None
        return loop.create_task(self.run_async(rounds))

    def stop(self) -> None:
        """Stop the current run after the round in progress."""
        if self._run is not None:
            self._run.grid.request_stop()

    async def _drive(self, rounds: int, inbox: Inbox) -> Result:
        if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 0:
            raise FederationError(f"rounds must be a non-negative int, got {rounds!r}.")
        if self._run is not None and self._run.thread.is_alive():
            raise FederationError("This federation is already running; wait for it or call stop().")
        run = self._run = _Run(self, rounds)
        observers = [d for d in (self._make_display(),) if d is not None] + list(self._subscribers)
        run.bus.subscribe(inbox.put)
        run.thread.start()
        interrupted = False
        try:
            while True:
                try:
                    event = await inbox.get()
                except KeyboardInterrupt:
                    if interrupted:
                        raise
                    interrupted = True
                    run.grid.request_stop()
                    continue
                if event is None:
                    continue
                _deliver(observers, event, run.bus)
                if isinstance(event, RunFinished):
                    break
        except asyncio.CancelledError:
            run.grid.request_stop()
            raise
        run.thread.join()
        return run.outcome()

    def _make_display(self) -> Subscriber | None:
        # Imported here: displays pull in rich, which a headless run does not need.
        from fedlab.dashboard import PlainConsole, RichConsole, select_console

        if self.display == "none":
            return None
        if self.display == "rich":
            return RichConsole()
        if self.display == "plain":
            return PlainConsole()
        return select_console()


class _Run:
    """One run: its bus, History, grid and the engine thread driving the server side."""

    def __init__(self, fed: Federation, rounds: int) -> None:
        self.fed = fed
        self.rounds = rounds
        fed._runs_started += 1
        rng = random.Random(None if fed.seed is None else f"{fed.seed}:{fed._runs_started}")
        self.run_id = rng.getrandbits(63)
        self.bus = EventBus()
        self.history = History()
        self.bus.subscribe(self.history)
        self.grid = SimulationGrid(
            fed.client_app,
            fed.num_clients,
            run_id=self.run_id,
            backend=fed.backend,
            max_workers=fed.max_workers,
            node_configs=fed.node_configs,
            run_config=fed.run_config,
            events=self.bus,
            seed=fed.seed,
        )
        self.result: Result | None = None
        self.error: BaseException | None = None
        # The engine thread inherits the caller's context (so widget code sees the cell's).
        self.thread = threading.Thread(
            target=contextvars.copy_context().run, args=(self._execute,), name="fedlab-run", daemon=True
        )

    def _execute(self) -> None:
        fed = self.fed
        started = time.perf_counter()
        name = type(fed.strategy).__name__ if fed.strategy is not None else "ServerApp"
        self.bus.emit(
            RunStarted(
                run_id=self.run_id,
                num_rounds=self.rounds,
                node_ids=tuple(self.grid.get_node_ids()),
                strategy=name,
                config=dict(fed.run_config),
            )
        )
        try:
            self.result = self._serve()
        except BaseException as exc:  # reported in RunFinished and re-raised by outcome()
            self.error = exc
        finally:
            self.grid.close()
        completed = self.result.rounds_completed if self.result is not None else self.history.rounds_completed
        self.bus.emit(
            RunFinished(
                run_id=self.run_id,
                rounds_completed=completed,
                duration_s=time.perf_counter() - started,
                stopped_early=completed < self.rounds,
                error=None if self.error is None else f"{type(self.error).__name__}: {self.error}",
            )
        )

    def _serve(self) -> Result:
        fed = self.fed
        if fed.strategy is not None:
            assert fed.initial_arrays is not None  # checked in Federation.__init__
            return fed.strategy.start(
                self.grid,
                fed.initial_arrays,
                self.rounds,
                timeout=fed.timeout,
                train_config=fed.config,
                evaluate_config=fed.evaluate_config if fed.evaluate_config is not None else fed.config,
                evaluate_fn=fed.evaluate_fn,
                seed=fed.seed,
            )
        assert fed.server_app is not None
        context = Context(run_id=self.run_id, node_id=0, run_config=dict(fed.run_config))
        returned = fed.server_app(self.grid, context)
        if isinstance(returned, Result):
            return returned
        return Result(arrays=ArrayRecord(), rounds_completed=self.history.rounds_completed)

    def outcome(self) -> Result:
        """Return the run's Result with its History, or raise the error that ended it."""
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return _with_history(self.result, self.history)


def _with_history(result: Result, history: History) -> Result:
    import dataclasses

    return dataclasses.replace(result, history=history)


def _deliver(observers: Sequence[Subscriber], event: Event, bus: EventBus) -> None:
    for observer in observers:
        try:
            observer(event)
        except Exception as exc:  # a broken display must not break the run
            bus.record_subscriber_error(observer, exc)


def _scalars(config: ConfigSource | None) -> UserConfig:
    if not isinstance(config, Mapping):
        return {}
    return {k: v for k, v in config.items() if isinstance(v, bool | int | float | str)}
