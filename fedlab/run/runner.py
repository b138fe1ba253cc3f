"""`Runner`: a federation's runs, one at a time: counted, shown, followed and stoppable.

A Federation owns one Runner and hands it its :class:`~fedlab.run.RunSpec` for each run;
``Federation.deploy`` hands it the same spec with a deployment's grid factory. The runner
counts the runs it starts (a seeded run's id depends on that count, so the n-th run of a
seeded federation always gets the same id), keeps the latest (for ``history`` and
``stop``), and delivers each run's events on the caller's thread to the display and to
its subscribers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from fedlab.checkpoint import Checkpoint
from fedlab.errors import FederationError
from fedlab.events import Event, EventBus, RunFinished, Subscriber
from fedlab.history import History
from fedlab.run.driver import AsyncInbox, Inbox, run_sync
from fedlab.run.engine import Engine, GridFactory
from fedlab.dashboard.display import Display
from fedlab.run.spec import RunSpec
from fedlab.server import Result
from fedlab.tracking import RunLog

__all__ = ["Runner"]


class Runner:
    """Runs :class:`~fedlab.run.RunSpec` s one at a time and keeps the latest run.

    Examples
    --------
    >>> import numpy as np, fedlab as fl
    >>> app = fl.ClientApp()
    >>> @app.train()
    ... def train(msg, ctx):
    ...     return msg.reply(fl.RecordDict({"arrays": msg.content["arrays"],
    ...                                     "metrics": fl.MetricRecord({"num-examples": 1})}))
    >>> spec = fl.Federation(app, strategy=fl.strategy.FedAvg(), num_clients=2,
    ...                      initial_arrays=[np.ones(2)], seed=1, display="none").spec
    >>> runner = Runner()
    >>> runner.run(spec, 1).rounds_completed, runner.history.rounds_completed
    (1, 1)
    """

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._latest: Engine | None = None
        self._started = 0

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber(event)`` for every event of later runs; return an unsubscriber."""
        self._subscribers.append(subscriber)
        return lambda: (
            self._subscribers.remove(subscriber) if subscriber in self._subscribers else None
        )

    @property
    def history(self) -> History | None:
        """The History of the latest run (live while it runs), or None before the first."""
        return self._latest.history if self._latest is not None else None

    def stop(self) -> None:
        """Stop the current run after the round in progress."""
        if self._latest is not None:
            self._latest.grid.request_stop()

    def run(
        self,
        spec: RunSpec,
        rounds: int,
        *,
        saved: Checkpoint | None = None,
        grid_factory: GridFactory | None = None,
    ) -> Result:
        """Run ``spec`` for ``rounds`` rounds and return its Result, blocking until done.

        Works in a script and inside a running event loop (a notebook cell), see
        :func:`~fedlab.run.driver.run_sync`. ``saved`` continues a checkpointed run;
        ``grid_factory`` replaces the simulation by another Grid (a deployment).
        """
        return run_sync(lambda inbox: self._drive(spec, rounds, inbox, saved, grid_factory))

    async def run_async(
        self,
        spec: RunSpec,
        rounds: int,
        *,
        saved: Checkpoint | None = None,
        grid_factory: GridFactory | None = None,
    ) -> Result:
        """As :meth:`run`, without blocking the running event loop."""
        return await self._drive(spec, rounds, AsyncInbox(), saved, grid_factory)

    async def _drive(
        self,
        spec: RunSpec,
        rounds: int,
        inbox: Inbox,
        saved: Checkpoint | None,
        grid_factory: GridFactory | None,
    ) -> Result:
        if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 0:
            raise FederationError(f"rounds must be a non-negative int, got {rounds!r}.")
        if self._latest is not None and self._latest.thread.is_alive():
            raise FederationError("This federation is already running; wait for it or call stop().")
        self._started += 1
        run = self._latest = Engine(
            spec, rounds, number=self._started, saved=saved, grid_factory=grid_factory
        )
        display = _make_display(spec.display, on_stop=self.stop)
        logs = [RunLog(logger) for logger in spec.loggers]
        observers = [d for d in (display,) if d is not None] + list(self._subscribers) + logs
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
                    _idle(observers, run.bus)
                    continue
                _deliver(observers, event, run.bus)
                if isinstance(event, RunFinished):
                    break
        except asyncio.CancelledError:
            run.grid.request_stop()
            _finish(logs, None, run.bus)
            raise
        run.thread.join()
        try:
            result = run.outcome()
        except BaseException:
            _finish(logs, None, run.bus)
            raise
        _finish(logs, result, run.bus)
        return result


def _make_display(kind: Display, *, on_stop: Callable[[], None]) -> Subscriber | None:
    """The display a run shows for ``display=kind``; ``on_stop`` is its Stop button's action."""
    from fedlab.dashboard import make_display

    return make_display(kind, on_stop=on_stop)


def _idle(observers: Sequence[Subscriber], bus: EventBus) -> None:
    # Displays that coalesce updates send what is pending while no event arrives.
    for observer in observers:
        idle = getattr(observer, "idle", None)
        if callable(idle):
            try:
                idle()
            except Exception as exc:  # a broken display must not break the run
                bus.record_subscriber_error(observer, exc)


def _finish(logs: Sequence[RunLog], result: Result | None, bus: EventBus) -> None:
    # The final model reaches the loggers with the Result, after RunFinished.
    for log in logs:
        try:
            log.finish(None if result is None else result.arrays)
        except Exception as exc:  # a broken logger must not break the run
            bus.record_subscriber_error(log, exc)


def _deliver(observers: Sequence[Subscriber], event: Event, bus: EventBus) -> None:
    for observer in observers:
        try:
            observer(event)
        except Exception as exc:  # a broken display must not break the run
            bus.record_subscriber_error(observer, exc)
