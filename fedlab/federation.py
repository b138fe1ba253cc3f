"""`Federation`: the front door. Wrap a ClientApp and a Strategy, then ``run()``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fedlab._driver import AsyncInbox, BlockingInbox, Inbox, drive_blocking
from fedlab._federation_inputs import check_config, check_evaluate_fn, settle_client_evaluation
from fedlab._resume import load_for
from fedlab._run import Run
from fedlab.checkpoint import Checkpoint
from fedlab.client import ClientApp
from fedlab.context import UserConfig
from fedlab.dashboard import Display, make_display
from fedlab.errors import FederationError
from fedlab.events import Event, EventBus, RunFinished, Subscriber
from fedlab.history import History
from fedlab.records import ArrayRecord
from fedlab.server import Grid, Result, ServerApp
from fedlab.simulation import BACKENDS, Backend, missing_backend_members
from fedlab.strategy import ConfigSource, EvaluateFn, Strategy

if TYPE_CHECKING:
    from fedlab.dashboard.widget import Dashboard
    from fedlab.datasets import FederatedDataset

__all__ = ["Display", "Federation"]


class Federation:
    """A ClientApp, a Strategy (or a ServerApp) and a number of clients: one federation.

    Parameters
    ----------
    client_app
        The code every client runs.
    strategy
        How the server samples clients and aggregates; give this or ``server_app``. A
        strategy whose ``fraction_evaluate`` was left at its default skips federated
        evaluation when the ClientApp has no ``@app.evaluate()`` (the run's first line
        says so); one set explicitly above 0 is refused then.
    server_app
        A full server program (``@app.main()``) instead of a strategy.
    num_clients
        How many simulated clients; client *i* gets ``node_config["partition-id"] == i``.
        Defaults to the dataset's number of partitions if ``dataset`` is given, else 10.
    dataset
        A :class:`~fedlab.datasets.FederatedDataset`; each client gets its partition with
        ``fedlab.datasets.load_partition(ctx)``.
    initial_arrays
        The global model before round 1 (an ArrayRecord, a state_dict or a list of arrays).
    config
        Sent to the clients every round in ``msg.content["config"]`` (a dict, ConfigRecord,
        or a function of the round); its scalar values are also each node's ``run_config``.
        Values are int, float, str, bytes, bool or a list of one of them; a dict is checked
        here, so an array, a nested dict or None is refused before the run, with the fix.
    evaluate_fn
        Server-side evaluation ``evaluate_fn(server_round, arrays)``, once before round 1
        (as round 0) and after every round; it returns a MetricRecord, a dict of metrics
        or None. Its signature is checked here.
    seed
        Makes node ids, client sampling and thus a run reproducible, on every backend.
    backend
        Where the clients run: ``"inline"`` (one after another in this process;
        deterministic), ``"threads"`` (a thread pool; numpy and torch release the GIL),
        ``"processes"`` (worker processes, arrays through shared memory: for CPU-heavy
        Python clients) or ``"ray"`` (a local Ray instance); or a backend instance for
        options, e.g. ``RayBackend(address="head:6379", num_cpus=1, num_gpus=0.5)``. A
        seeded run gives the same result on every backend.
    timeout
        Seconds to wait for each phase of a round (training, evaluation) to reply; the
        default is 600 (ten minutes). At the deadline the round goes on without the
        clients still running, which count as timed out (``ErrorCode.TIMEOUT``); in a
        simulation their calls are abandoned (a worker process or actor running one is
        killed and replaced), so a client that hangs cannot hang the run. With ``"inline"`` clients
        run one after another, so the timeout is the budget of the whole phase. None
        waits forever. While a round waits on a client for more than a few seconds, the
        progress line says which one.
    display
        ``"auto"`` picks a live view from ``FEDLAB_DISPLAY``, the notebook and the terminal;
        or force one: ``"widget"`` (the live notebook dashboard), ``"static"`` (a PNG in the
        notebook), ``"rich"``, ``"plain"`` or ``"none"``.
    checkpoint_dir
        Write a checkpoint there after every completed round (see :mod:`fedlab.checkpoint`),
        replacing the previous one; :meth:`resume` continues from it.

    Examples
    --------
    >>> import numpy as np, fedlab as fl
    >>> app = fl.ClientApp()
    >>> @app.train()
    ... def train(msg, ctx):
    ...     w = msg.content["arrays"].to_numpy()[0] + 1.0
    ...     return msg.reply(fl.RecordDict({"arrays": fl.ArrayRecord([w]),
    ...                                     "metrics": fl.MetricRecord({"num-examples": 1})}))
    >>> fed = fl.Federation(app, strategy=fl.strategy.FedAvg(), num_clients=3,
    ...                     initial_arrays=[np.zeros(2)], seed=0, display="none")
    >>> fed.note
    'federated evaluation skipped: the ClientApp has no @app.evaluate()'
    >>> fed.run(rounds=2).arrays.to_numpy()[0]
    array([2., 2.])
    """

    def __init__(
        self,
        client_app: ClientApp,
        strategy: Strategy | None = None,
        *,
        server_app: ServerApp | None = None,
        num_clients: int | None = None,
        dataset: FederatedDataset | None = None,
        initial_arrays: ArrayRecord | Mapping[str, Any] | Sequence[Any] | None = None,
        config: ConfigSource | None = None,
        evaluate_config: ConfigSource | None = None,
        evaluate_fn: EvaluateFn | None = None,
        run_config: UserConfig | None = None,
        node_configs: Sequence[Mapping[str, bool | int | float | str]] | None = None,
        seed: int | None = None,
        backend: str | Backend = "inline",
        max_workers: int | None = None,
        timeout: float | None = 600.0,
        display: Display = "auto",
        checkpoint_dir: str | os.PathLike[str] | None = None,
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
        if evaluate_fn is not None:
            check_evaluate_fn(evaluate_fn)
        check_config("config", config)
        check_config("evaluate_config", evaluate_config)
        note = settle_client_evaluation(strategy, client_app)
        dataset_config: UserConfig = {}
        if dataset is not None:  # registered in-process; clients find it through their run_config
            from fedlab.datasets import attach

            num_clients, dataset_config = attach(dataset, num_clients)
        num_clients = 10 if num_clients is None else num_clients
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
        if display not in ("auto", "widget", "static", "rich", "plain", "none"):
            raise FederationError(
                "display must be 'auto', 'widget', 'static', 'rich', 'plain' or 'none', "
                f"got {display!r}."
            )
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
        self.run_config.update(dataset_config)
        self.dataset = dataset
        self.node_configs = node_configs
        self.seed = seed
        self.backend = backend
        self.max_workers = max_workers
        self.timeout = timeout
        self.display = display
        self.checkpoint_dir = checkpoint_dir
        #: What the run's first line adds, e.g. that federated evaluation is skipped.
        self.note = note
        self._subscribers: list[Subscriber] = []
        self._run: Run | None = None
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

        With a ServerApp, the ServerApp decides how many rounds it runs: ``rounds``
        reaches it (and the clients) as ``context.run_config["num-server-rounds"]``,
        unless ``run_config`` already sets that key, which then wins. The run's first line
        and progress count towards that number, and a run is reported as stopped early
        only when the ServerApp's Result says so (or the run was stopped), never because
        it ran fewer rounds than ``rounds``.

        Raises
        ------
        FederationError
            If the run learned nothing: no round aggregated anything (every reply failed or
            was refused), or, for a ServerApp that exchanges messages without rounds, every
            client reply failed. The message names the first failure; ``self.history``
            holds them all. A run in which only some rounds aggregated nothing returns.
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

    def resume(
        self, checkpoint_dir: str | os.PathLike[str] | None = None, rounds: int | None = None
    ) -> Result:
        """Continue the run saved in ``checkpoint_dir`` after its last completed round.

        Build the Federation as for the run that wrote the checkpoint (same ClientApp,
        strategy class and settings, ``num_clients``, config and evaluate_fn), then call
        ``fed.resume()`` instead of ``fed.run()``. The global arrays, the strategy's state
        (RNG, momentum, optimiser moments, control variates), every node's
        ``context.state``, the run id and the History are restored, so with the inline
        backend the resumed run ends exactly as an uninterrupted one would. Client code
        must draw its randomness from its inputs (seed, round, node, ``context.state``),
        not from a process-wide generator, for that to hold.

        Parameters
        ----------
        checkpoint_dir
            Where the checkpoint is; by default this federation's ``checkpoint_dir``. The
            resumed run keeps writing checkpoints to ``self.checkpoint_dir``, or back to
            this directory when the federation has none.
        rounds
            The round to finish at, counted from the start of the run (default: the number
            the interrupted run was asked for); more than that extends the run.

        Raises
        ------
        CheckpointError
            If there is no checkpoint, it is damaged, or it was written by another strategy
            or number of clients.
        """
        directory = checkpoint_dir if checkpoint_dir is not None else self.checkpoint_dir
        if directory is None or self.strategy is None:
            raise FederationError(
                "resume() needs a strategy and a checkpoint: pass checkpoint_dir=... here or to "
                "Federation(...)."
            )
        saved = load_for(directory, self.strategy, self.num_clients)
        if self.checkpoint_dir is None:
            self.checkpoint_dir = directory
        total = saved.num_rounds if rounds is None else rounds

        async def on_new_loop() -> Result:  # an AsyncInbox must be made on its loop
            return await self._drive(total, AsyncInbox(), saved)

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(on_new_loop())
        return drive_blocking(self._drive(total, BlockingInbox(), saved))

    def deploy(
        self,
        address: str | None = None,
        *,
        local: int | None = None,
        rounds: int = 3,
        **options: Any,
    ) -> Result:
        """Run this federation on real processes and return the same :class:`Result` as run().

        ``deploy(local=3)`` starts a SuperLink and 3 SuperNodes on this machine (loopback,
        free ports), runs, and stops them again; ``deploy("host:port")`` uses a running
        SuperLink. The ClientApp is shipped to the nodes as an app bundle (captured by value
        when defined in a notebook), the strategy runs here, and the same events reach
        History and the displays as in a simulation. ``options`` are listed in
        :func:`fedlab.deploy.local.managed.deploy` (e.g. ``insecure=True``, ``signing_key=...``).
        """
        from fedlab.deploy.local.managed import deploy

        return deploy(self, address, local=local, rounds=rounds, **options)

    async def _drive(
        self,
        rounds: int,
        inbox: Inbox,
        saved: Checkpoint | None = None,
        make_grid: Callable[[EventBus], Grid] | None = None,
    ) -> Result:
        if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 0:
            raise FederationError(f"rounds must be a non-negative int, got {rounds!r}.")
        if self._run is not None and self._run.thread.is_alive():
            raise FederationError("This federation is already running; wait for it or call stop().")
        run = self._run = Run(self, rounds, saved, make_grid)
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
                    _idle(observers, run.bus)
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
        return make_display(self.display, on_stop=self.stop)

    def dashboard(self) -> Dashboard:
        """Return a live notebook dashboard of the latest run that also follows later runs.

        Needs anywidget (a core dependency); shown when it is a cell's last expression.
        """
        from fedlab.dashboard.widget import Dashboard

        return Dashboard.follow(self)


def _idle(observers: Sequence[Subscriber], bus: EventBus) -> None:
    # Displays that coalesce updates send what is pending while no event arrives.
    for observer in observers:
        idle = getattr(observer, "idle", None)
        if callable(idle):
            try:
                idle()
            except Exception as exc:  # a broken display must not break the run
                bus.record_subscriber_error(observer, exc)


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
