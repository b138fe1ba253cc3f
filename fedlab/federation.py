"""`Federation`: the front door. Wrap a ClientApp and a Strategy, then ``run()``.

A Federation holds a :class:`~fedlab.run.RunSpec`, what it runs, checked when it is made
and shown as its attributes (:mod:`fedlab.run.settings`), and a
:class:`~fedlab.run.Runner`, which executes that spec one run at a time.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fedlab._branching import Branching
from fedlab.client import ClientApp
from fedlab.context import UserConfig
from fedlab.dashboard import Display
from fedlab.devices import Devices
from fedlab.errors import FederationError
from fedlab.events import Subscriber
from fedlab.history import History
from fedlab.records import ArrayRecord
from fedlab.run import Runner, RunSpec, load_for
from fedlab.run.spec import CheckpointKeep
from fedlab.server import Result, ServerApp
from fedlab.simulation import Backend
from fedlab.strategy import ConfigSource, EvaluateFn, Strategy
from fedlab.tracking import LoggerSpec

if TYPE_CHECKING:
    from fedlab.dashboard.widget import Dashboard
    from fedlab.datasets import FederatedDataset

__all__ = ["Display", "Federation"]


class Federation(Branching):
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
        Seconds each phase of a round (training, evaluation) waits for replies; default 600,
        None waits forever. At the deadline the round goes on without the clients still
        running (``ErrorCode.TIMEOUT``); their calls are abandoned (a worker process or actor
        running one is replaced), so a hung client cannot hang the run. With ``"inline"``
        each call gets ``timeout`` seconds of its own. A long wait is named on the progress line.
    display
        ``"auto"`` picks a live view from ``FEDLAB_DISPLAY``, the notebook and the terminal;
        or force one: ``"widget"`` (the live notebook dashboard), ``"static"`` (a PNG in the
        notebook), ``"rich"``, ``"plain"`` or ``"none"``.
    checkpoint_dir
        Write a checkpoint there after every completed round (see :mod:`fedlab.checkpoint`),
        replacing the previous one; :meth:`resume` continues from it.
    checkpoint_keep
        ``"latest"``, or ``"all"`` to also keep every round's checkpoint (in
        ``checkpoint_dir/rounds/``) for :meth:`fork`: per round, the model, strategy arrays
        (up to 3× the model for FedAdam), clients' ``context.state`` and History.
    loggers
        Where every run logs its config, round and client metrics and final model:
        ``"tensorboard"`` (``./runs``), ``"mlflow"`` (``./mlruns``) or logger objects with
        options, e.g. ``fedlab.tracking.MLflowLogger(tracking_uri)``; see
        :mod:`fedlab.tracking`.
    devices
        ``"auto"`` (every visible GPU, else ``"cpu"``; see :mod:`fedlab.devices`), ``"cpu"``,
        ``"cuda:1"`` or a list: client *i* gets ``devices[i % len(devices)]`` as
        ``node_config["device"]`` on every backend and with ``deploy(local=N)``; read it
        with :func:`fedlab.client_device` (a ``device`` in ``node_configs`` wins).

    Each argument stays an attribute of that name, settled (``num_clients`` from the
    dataset, ``initial_arrays`` an ArrayRecord), beside ``note`` and the whole ``spec``.
    Assigning one changes the runs that start later, not one in progress.

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
        checkpoint_keep: CheckpointKeep = "latest",
        loggers: Sequence[LoggerSpec] | None = None,
        devices: Devices = "auto",
    ) -> None:
        spec = RunSpec.build(
            client_app,
            strategy,
            server_app=server_app,
            num_clients=num_clients,
            dataset=dataset,
            initial_arrays=initial_arrays,
            config=config,
            evaluate_config=evaluate_config,
            evaluate_fn=evaluate_fn,
            run_config=run_config,
            node_configs=node_configs,
            seed=seed,
            backend=backend,
            max_workers=max_workers,
            timeout=timeout,
            display=display,
            checkpoint_dir=checkpoint_dir,
            checkpoint_keep=checkpoint_keep,
            loggers=loggers,
            devices=devices,
        )
        super().__init__(spec)
        self._runner = Runner()

    # -- observing ------------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber(event)`` for every event of later runs, on the caller's thread."""
        return self._runner.subscribe(subscriber)

    @property
    def history(self) -> History | None:
        """The History of the latest run (live while it runs), or None before the first."""
        return self._runner.history

    # -- running --------------------------------------------------------------------------

    def run(self, rounds: int = 3) -> Result:
        """Run the federation for ``rounds`` rounds and return its :class:`Result`.

        Blocks until done. Works in a script and inside a notebook whose event loop is
        already running; there a kernel interrupt stops the run cleanly after the current
        round (interrupt twice to abort at once).

        With a ServerApp, the ServerApp decides how many rounds it runs: ``rounds`` reaches
        it (and the clients) as ``context.run_config["num-server-rounds"]`` unless
        ``run_config`` sets that key. Progress counts towards that number; a run is reported
        as stopped early only when its Result says so or it was stopped.

        Raises
        ------
        FederationError
            If the run learned nothing: no round aggregated anything (every reply failed or
            was refused), or, for a ServerApp that exchanges messages without rounds, every
            client reply failed. The message names the first failure; ``self.history``
            holds them all. A run in which only some rounds aggregated nothing returns.
        """
        return self._runner.run(self.spec, rounds)

    async def run_async(self, rounds: int = 3) -> Result:
        """Run the federation without blocking the event loop: ``await fed.run_async()``."""
        return await self._runner.run_async(self.spec, rounds)

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
        self._runner.stop()

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
        return self._runner.run(self.spec, total, saved=saved)

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

        return deploy(self.spec, self._runner, address, local=local, rounds=rounds, **options)

    def dashboard(self) -> Dashboard:
        """Return a live notebook dashboard of the latest run that also follows later runs.

        Needs anywidget (a core dependency); shown when it is a cell's last expression.
        """
        from fedlab.dashboard.widget import Dashboard

        return Dashboard.follow(self)
