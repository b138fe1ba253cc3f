"""How a run checkpoints itself after every round, and how a run continues from one.

The engine and runner keep the plumbing (threads, inboxes, displays); this module holds
what a checkpoint adds to a run: the check that a federation can continue one
(:func:`load_for`), the ``on_round_end`` callback that writes one, and what a resumed run
restores before its first round (node states, strategy state, History). The on-disk
format is :mod:`fedlab.checkpoint`'s.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from fedlab.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from fedlab.errors import CheckpointError
from fedlab.events import Event, RunStarted, Subscriber
from fedlab.history import History
from fedlab.records import RecordDict
from fedlab.server.result import Result
from fedlab.simulation import SimulationGrid
from fedlab.strategy import Strategy, StrategyState

__all__ = [
    "KEPT",
    "RoundCheckpointer",
    "follow",
    "for_strategy",
    "kept_round",
    "load_for",
    "merged",
    "restore_nodes",
]

#: The folder of a checkpoint directory that ``checkpoint_keep="all"`` keeps each round in.
KEPT = "rounds"


def kept_round(directory: str | os.PathLike[str], round: int) -> Checkpoint:
    """Load the checkpoint kept for ``round`` in ``directory`` (``checkpoint_keep="all"``).

    Raises
    ------
    CheckpointError
        If that round was not kept; the message lists the rounds that were.
    """
    folder = Path(directory) / KEPT
    path = folder / f"round-{round:06d}"
    if not (path / "checkpoint.json").is_file():
        kept = sorted(int(p.name[6:]) for p in folder.glob("round-*") if p.name[6:].isdigit())
        listed = ", ".join(map(str, kept)) if kept else "none"
        raise CheckpointError(
            f"No checkpoint of round {round} is kept in {str(directory)!r} (kept rounds: "
            f"{listed}). Run the parent with checkpoint_dir=... and checkpoint_keep='all' to "
            "keep every round, and fork at one of the rounds it completed."
        )
    return load_checkpoint(path)


def for_strategy(checkpoint: Checkpoint, strategy: Strategy) -> Checkpoint:
    """``checkpoint`` as ``strategy`` continues it: its own state, or a fresh one for a new class.

    A strategy of the class that wrote the checkpoint gets the saved state (RNG, momentum,
    moments, control variates). Another class starts with its memory empty, as at round
    1, but draws its clients with the saved sampling RNG, so that the clients a fork
    samples next do not depend on the strategy it switched to.
    """
    name = type(strategy).__name__
    if checkpoint.strategy == name:
        return checkpoint
    strategy.reset()
    fresh = strategy.state_dict()
    values = dict(fresh.values)
    if "rng" in checkpoint.strategy_state.values:
        values["rng"] = checkpoint.strategy_state.values["rng"]
    state = StrategyState(arrays=dict(fresh.arrays), values=values)
    return dataclasses.replace(checkpoint, strategy=name, strategy_state=state)


def load_for(directory: str | os.PathLike[str], strategy: Strategy, num_clients: int) -> Checkpoint:
    """Load the checkpoint in ``directory`` and check that this federation can continue it."""
    checkpoint = load_checkpoint(directory)
    if checkpoint.strategy != type(strategy).__name__:
        raise CheckpointError(
            f"The checkpoint in {str(directory)!r} was written by a {checkpoint.strategy} run, but "
            f"this federation's strategy is {type(strategy).__name__}; resume it with the same "
            "strategy (and the same ClientApp and settings) as the run that wrote it."
        )
    if len(checkpoint.node_ids) != num_clients:
        raise CheckpointError(
            f"The checkpoint in {str(directory)!r} has {len(checkpoint.node_ids)} clients but this "
            f"federation has num_clients={num_clients}; resume with num_clients="
            f"{len(checkpoint.node_ids)}."
        )
    return checkpoint


def restore_nodes(grid: SimulationGrid, checkpoint: Checkpoint) -> None:
    """Give every simulated node back the ``context.state`` it had at the checkpoint."""
    for node_id, state in zip(checkpoint.node_ids, checkpoint.node_states, strict=True):
        if len(state):  # nodes never addressed have no Context yet; keep it that way
            grid.context(node_id).state = state


def follow(history: History) -> Subscriber:
    """Record a resumed run's events into the History restored from its checkpoint.

    That History describes the whole run, so it keeps the round the run first started
    at; the displays still get the resumed segment's own ``RunStarted``.
    """
    first_round = int(history.run["start_round"])

    def record(event: Event) -> None:
        if isinstance(event, RunStarted):
            event = dataclasses.replace(event, start_round=first_round)
        history(event)

    return record


def merged(result: Result, checkpoint: Checkpoint) -> Result:
    """``result`` of a resumed segment, with the metrics of the rounds before it added."""
    earlier = checkpoint.metrics
    return dataclasses.replace(
        result,
        train_metrics_clientapp={**earlier.get("train", {}), **result.train_metrics_clientapp},
        evaluate_metrics_clientapp={
            **earlier.get("evaluate", {}),
            **result.evaluate_metrics_clientapp,
        },
        evaluate_metrics_serverapp={
            **earlier.get("server", {}),
            **result.evaluate_metrics_serverapp,
        },
    )


def _snapshot(state: RecordDict) -> RecordDict:
    """Copy a node's state, which a client still running (threads backend) may be changing."""
    for _ in range(100):
        try:
            return state.copy()
        except RuntimeError:  # "changed size during iteration": that client wrote; copy again
            continue
    raise CheckpointError(
        "A node's context.state kept changing while the checkpoint copied it; a client that "
        "writes its state in a tight loop cannot be checkpointed with the threads backend."
    )


def _node_states(grid: SimulationGrid, node_ids: tuple[int, ...]) -> tuple[RecordDict, ...]:
    """Each node's state, in ``node_ids`` order; nodes never addressed share one empty state."""
    created = grid.created_contexts()
    empty = RecordDict()
    return tuple(
        _snapshot(created[n].state) if n in created else empty for n in node_ids
    )


class RoundCheckpointer:
    """The ``on_round_end`` callback of :meth:`Strategy.start`: a checkpoint per round.

    Parameters
    ----------
    directory
        Where to write.
    strategy, grid, history
        The run's strategy (for its state), simulation (for node states) and History.
    run_id, num_rounds
        The run's id and the number of rounds it was asked for.
    earlier
        The checkpoint a resumed run started from, whose metrics come first.
    keep_all
        Also keep this round's checkpoint in ``rounds/round-<k>/`` (``checkpoint_keep="all"``).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        strategy: Strategy,
        grid: SimulationGrid,
        history: History,
        run_id: int,
        num_rounds: int,
        earlier: Checkpoint | None = None,
        keep_all: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self._keep_all = keep_all
        self._strategy, self._grid, self._history = strategy, grid, history
        self._run_id, self._num_rounds, self._earlier = run_id, num_rounds, earlier

    def __call__(self, partial: Result) -> None:
        """Save the run as it stands after round ``partial.rounds_completed``."""
        so_far = partial if self._earlier is None else merged(partial, self._earlier)
        node_ids = tuple(self._grid.get_node_ids())
        checkpoint = Checkpoint(
            round=partial.rounds_completed,
            num_rounds=self._num_rounds,
            run_id=self._run_id,
            strategy=type(self._strategy).__name__,
            strategy_state=self._strategy.state_dict(),
            node_ids=node_ids,
            node_states=_node_states(self._grid, node_ids),
            arrays=partial.arrays,
            metrics={
                "train": so_far.train_metrics_clientapp,
                "evaluate": so_far.evaluate_metrics_clientapp,
                "server": so_far.evaluate_metrics_serverapp,
            },
            history=self._history,
        )
        save_checkpoint(self.directory, checkpoint)
        if self._keep_all:
            save_checkpoint(self.directory / KEPT / f"round-{checkpoint.round:06d}", checkpoint)
