"""The engine of one run: it executes a :class:`RunSpec` against a Grid, on its own thread.

An :class:`Engine` holds a run's bus, History and grid, and the thread that drives the
server side (the strategy's ``start`` or the ServerApp); :class:`~fedlab.run.Runner`
starts that thread and drains the bus on the caller's thread. The grid comes from a
:data:`GridFactory`: a simulation of the spec's clients by default, a deployment's grid
when ``Federation.deploy`` supplies one.

A run that learned nothing fails: when rounds aggregated (``RoundAggregated`` events) and
not one of them changed the global arrays, or, for a ServerApp that exchanges messages
without a strategy's rounds, when every client reply failed, the run ends with a
:class:`~fedlab.errors.FederationError` that says so and names the first failure, instead
of returning the untrained model as a success.
"""

from __future__ import annotations

import contextvars
import dataclasses
import random
import threading
import time
from collections.abc import Callable

from fedlab.checkpoint import Checkpoint
from fedlab.context import Context, UserConfigValue
from fedlab.devices import DeviceConfigs, resolve_devices
from fedlab.errors import FederationError
from fedlab.events import (
    LISTED_NODES,
    ClientReplied,
    Event,
    EventBus,
    ReplyRejected,
    RoundAggregated,
    RunFinished,
    RunStarted,
)
from fedlab.format import describe_error, format_rounds
from fedlab.history import History
from fedlab.records import ArrayRecord
from fedlab.run.resume import RoundCheckpointer, follow, merged, restore_nodes
from fedlab.run.spec import RunSpec
from fedlab.server import Grid, Result
from fedlab.simulation import SimulationGrid

__all__ = ["Engine", "GridFactory"]

#: Makes the grid a run talks to, given the run's event bus.
GridFactory = Callable[[EventBus], Grid]


class Engine:
    """One run of ``spec``: its bus, History, grid and the engine thread driving the server side.

    Parameters
    ----------
    spec
        What to run.
    rounds
        The number of rounds asked for (for a ServerApp, the default of its
        ``num-server-rounds``).
    number
        Which run of its federation this is, counted from 1: with a seed, the run id
        is drawn from the seed and this number, so the n-th run of a seeded federation
        always gets the same id.
    saved
        The checkpoint a resumed run continues from.
    grid_factory
        Makes the grid; by default a simulation of the spec's clients. A deployment's
        grid decides the run id.

    The caller starts :attr:`thread` and drains :attr:`bus`; :meth:`outcome` then hands
    back the Result or re-raises the run's error.
    """

    def __init__(
        self,
        spec: RunSpec,
        rounds: int,
        *,
        number: int,
        saved: Checkpoint | None = None,
        grid_factory: GridFactory | None = None,
    ) -> None:
        self.spec = spec
        self.saved = saved
        #: The run's run_config; a ServerApp finds its number of rounds in it.
        self.run_config = dict(spec.run_config)
        if spec.server_app is not None:
            self.run_config.setdefault("num-server-rounds", rounds)
            rounds = _server_rounds(self.run_config["num-server-rounds"], rounds)
        self.rounds = rounds
        rng = random.Random(None if spec.seed is None else f"{spec.seed}:{number}")
        self.run_id = rng.getrandbits(63) if saved is None else saved.run_id
        self.bus = EventBus()
        self.history = History() if saved is None else saved.history
        self.bus.subscribe(self.history if saved is None else follow(self.history))
        self._learned = _Learned()
        self.bus.subscribe(self._learned)
        self.grid: Grid = (grid_factory or self._simulation)(self.bus)
        self.run_id = self.grid.run_id
        if saved is not None:
            restore_nodes(self.simulation_grid(), saved)
        self.result: Result | None = None
        self.error: BaseException | None = None
        # The engine thread inherits the caller's context (so widget code sees the cell's).
        self.thread = threading.Thread(
            target=contextvars.copy_context().run, args=(self._execute,), name="fedlab-run", daemon=True
        )

    def _simulation(self, bus: EventBus) -> Grid:
        spec, saved = self.spec, self.saved
        return SimulationGrid(
            spec.client_app,
            spec.num_clients,
            run_id=self.run_id,
            backend=spec.backend,
            max_workers=spec.max_workers,
            node_configs=DeviceConfigs(
                resolve_devices(spec.devices), spec.num_clients, spec.node_configs
            ),
            run_config=self.run_config,
            events=bus,
            seed=spec.seed,
            node_ids=None if saved is None else saved.node_ids,
        )

    def simulation_grid(self) -> SimulationGrid:
        """The grid, as checkpointing needs it: a simulation (deployments refuse checkpoints)."""
        assert isinstance(self.grid, SimulationGrid)
        return self.grid

    def _execute(self) -> None:
        spec = self.spec
        started = time.perf_counter()
        name = type(spec.strategy).__name__ if spec.strategy is not None else "ServerApp"
        nodes = self.grid.get_node_ids()
        self.bus.emit(
            RunStarted(
                run_id=self.run_id,
                num_rounds=self.rounds,
                node_ids=tuple(nodes) if len(nodes) <= LISTED_NODES else (),
                num_nodes=len(nodes),
                strategy=name,
                config=dict(self.run_config),
                start_round=1 if self.saved is None else self.saved.round + 1,
                note=spec.note,
            )
        )
        try:
            self.result = self._serve()
            self._learned.check()
        except BaseException as exc:  # reported in RunFinished and re-raised by outcome()
            self.error = exc
        finally:
            self.grid.close()
        completed = self.result.rounds_completed if self.result is not None else self.history.rounds_completed
        if spec.server_app is None:
            stopped_early = completed < self.rounds
        else:  # a ServerApp runs as many rounds as it likes: only its own Result can tell
            stopped_early = self.result is not None and self.result.stopped_early
        self.bus.emit(
            RunFinished(
                run_id=self.run_id,
                rounds_completed=completed,
                duration_s=time.perf_counter() - started,
                stopped_early=stopped_early,
                error=None if self.error is None else f"{type(self.error).__name__}: {self.error}",
            )
        )

    def _serve(self) -> Result:
        spec = self.spec
        if spec.strategy is not None:
            assert spec.initial_arrays is not None  # checked by RunSpec.build
            saved = self.saved
            checkpointing: dict[str, object] = {}
            # Only when needed: a custom start() may lack these (a fork may write no checkpoint).
            if saved is not None or spec.checkpoint_dir is not None:
                checkpointing["start_round"] = 1 if saved is None else saved.round + 1
            if spec.checkpoint_dir is not None:
                checkpointing["on_round_end"] = RoundCheckpointer(
                    spec.checkpoint_dir, spec.strategy, self.simulation_grid(), self.history,
                    self.run_id, self.rounds, saved, keep_all=spec.checkpoint_keep == "all",
                )
            if saved is not None:
                spec.strategy.load_state_dict(saved.strategy_state)
            result = spec.strategy.start(
                self.grid,
                spec.initial_arrays if saved is None else saved.arrays,
                self.rounds,
                timeout=spec.timeout,
                train_config=spec.config,
                evaluate_config=spec.evaluate_config if spec.evaluate_config is not None else spec.config,
                evaluate_fn=spec.evaluate_fn,
                seed=spec.seed,
                **checkpointing,  # type: ignore[arg-type]
            )
            return result if saved is None else merged(result, saved)
        assert spec.server_app is not None
        context = Context(run_id=self.run_id, node_id=0, run_config=dict(self.run_config))
        returned = spec.server_app(self.grid, context)
        if isinstance(returned, Result):
            return returned
        return Result(
            arrays=ArrayRecord(),
            rounds_completed=self.history.rounds_completed,
            stopped_early=self.grid.stop_requested,
        )

    def outcome(self) -> Result:
        """Return the run's Result with its History, or raise the error that ended it."""
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return _with_history(self.result, self.history)


def _server_rounds(value: UserConfigValue, rounds: int) -> int:
    # The rounds a ServerApp was told to run; a project may write the number as text.
    try:
        return int(value)
    except ValueError:
        return rounds


def _with_history(result: Result, history: History) -> Result:
    return dataclasses.replace(result, history=history)


class _Learned:
    """Follows a run's events to tell whether it learned anything (an event subscriber)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # replies are reported from the backend's threads
        self.aggregated = 0
        self.unaggregated: list[RoundAggregated] = []
        self.replies = 0
        self.failures = 0
        self.first_failure: ClientReplied | ReplyRejected | None = None

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, RoundAggregated):
                if event.aggregated:
                    self.aggregated += 1
                else:
                    self.unaggregated.append(event)
                return
            if isinstance(event, ClientReplied):
                self.replies += 1
                if event.error is not None:
                    self._failed(event)
            elif isinstance(event, ReplyRejected):
                self._failed(event)

    def _failed(self, event: ClientReplied | ReplyRejected) -> None:
        self.failures += 1
        if self.first_failure is None:
            self.first_failure = event

    def check(self) -> None:
        """Raise a FederationError if the run learned nothing (see the module docstring)."""
        with self._lock:
            if self.aggregated:
                return
            if self.unaggregated:
                rounds = format_rounds(e.round for e in self.unaggregated)
                head = (
                    f"No round aggregated anything: {rounds} kept the global arrays unchanged, "
                    f"with {self.failures} client failure{'' if self.failures == 1 else 's'}"
                )
                outcome = "the model was not trained"
            elif self.replies and self.failures >= self.replies:
                head = f"Every client reply failed ({self.failures} of {self.replies})"
                outcome = "no client answered"
            else:
                return
            first, quiet = self.first_failure, self.unaggregated[:1]
        if first is not None:
            who = f"node {first.node_id}"
            if first.partition_id is not None:
                who = f"client {first.partition_id} ({who})"
            error = first.error
            reason = describe_error(error.code, error.reason) if error else "unknown error"
            reason = reason.rstrip(".")
            detail = f"First failure: {who} in round {first.round} ({first.phase}): {reason}"
        else:
            detail = f"No client failed; round {quiet[0].round}: {quiet[0].reason}"
        raise FederationError(
            f"{head}. {detail}. Fix what the failures say (History.failures() lists every one); "
            f"{outcome}."
        )
