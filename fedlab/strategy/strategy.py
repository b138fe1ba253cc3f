"""`Strategy`: what to send to which nodes each round, and how to combine the replies."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from fedlab.errors import StrategyError
from fedlab.events import EventBus, StrategyReport
from fedlab.message import Message
from fedlab.records import ArrayRecord, ConfigRecord, MetricRecord
from fedlab.server.grid import Grid
from fedlab.server.result import Result
from fedlab.strategy._round_loop import ConfigSource, EvaluateFn, run_rounds
from fedlab.strategy._selection import NodeFilter, eligible_nodes, sample_eligible
from fedlab.validate import check_int

__all__ = ["Strategy", "StrategyState"]


@dataclass
class StrategyState:
    """A strategy's memory between rounds: named ArrayRecords and JSON-able values."""

    arrays: dict[str, ArrayRecord] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)


class Strategy(ABC):
    """Base of every strategy: four hooks, and :meth:`start`, which drives them round by round.

    Subclasses implement ``configure_train``, ``aggregate_train``, ``configure_evaluate``
    and ``aggregate_evaluate``. They talk only to a :class:`~fedlab.server.Grid`, so the
    same strategy runs in simulation and in deployment. They never print: they report
    through events (:meth:`report`).
    """

    #: True when :meth:`aggregate_train` goes over its replies once, in order, and keeps
    #: none: it then gets them as a one-pass stream, each as soon as it arrives, and a
    #: round's memory no longer grows with the number of clients. False: it gets them as a
    #: list. A subclass that writes its own ``aggregate_train`` (for FedAvg's subclasses,
    #: also ``aggregate_arrays``) and does not set this gets False: code written for a
    #: list may go over the replies more than once.
    streams_replies: bool = False
    #: The hooks that read the training replies; a subclass writing one takes a list.
    _reply_hooks: ClassVar[tuple[str, ...]] = ("aggregate_train",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Decided once, from what the class itself declares and writes.
        own = vars(cls)
        if "streams_replies" not in own and any(hook in own for hook in cls._reply_hooks):
            cls.streams_replies = False

    def __init__(
        self, *, node_ids: Collection[int] | None = None, node_filter: NodeFilter | None = None
    ) -> None:
        self.rng = random.Random()
        #: Only these nodes are ever sampled (None: every node).
        self.node_ids = None if node_ids is None else tuple(sorted(set(node_ids)))
        #: Only nodes whose ``node_config`` this predicate accepts are sampled (None: every node).
        self.node_filter = node_filter
        self._events: EventBus | None = None
        self._run_id = 0

    # -- the four hooks -----------------------------------------------------------------

    @abstractmethod
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Return the training instructions for this round."""

    @abstractmethod
    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Combine training replies (failed ones included) into new arrays and metrics.

        ``replies`` come in the order the instructions were sent: as a list, or with
        :attr:`streams_replies` as a one-pass stream. Return ``None`` arrays to keep the
        current global arrays for this round.
        """

    @abstractmethod
    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Return the evaluation instructions for this round (may be empty)."""

    @abstractmethod
    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """Combine evaluation replies into metrics."""

    def check_train_reply(self, instruction: Message, reply: Message) -> str | None:
        """Return why a successful training reply cannot be aggregated, or None to accept it.

        :meth:`start` asks this of every training reply before :meth:`aggregate_train` sees
        it. A refused reply reaches ``aggregate_train`` as an error reply (code
        :attr:`~fedlab.message.ErrorCode.REPLY_REJECTED`, the returned text as its reason)
        and is reported with a :class:`~fedlab.events.ReplyRejected` event: that client
        failed this round, and the round goes on with the others. The base accepts every
        reply; :class:`~fedlab.strategy.FedAvg` and the strategies built on it compare the
        reply with the model in ``instruction`` (see :meth:`FedAvg.check_train_reply`).
        """
        return None

    # -- helpers for subclasses ---------------------------------------------------------

    def report(self, server_round: int, **info: Any) -> None:
        """Tell observers what the strategy did this round (a StrategyReport event)."""
        if self._events is not None:
            self._events.emit(
                StrategyReport(
                    run_id=self._run_id, round=server_round, strategy=type(self).__name__, info=info
                )
            )

    def sample_nodes(
        self, grid: Grid, fraction: float, min_nodes: int, min_available: int, timeout: float = 60.0
    ) -> list[int]:
        """Sample ``max(int(fraction * eligible), min_nodes)`` eligible nodes with :attr:`rng`.

        Eligible nodes are the available ones admitted by :attr:`node_ids` and
        :attr:`node_filter` (:meth:`eligible_nodes`). Their ids are sorted before sampling
        so the choice depends only on the seed.
        """
        if fraction <= 0.0:
            return []
        available = grid.wait_for_nodes(max(min_available, min_nodes), timeout)
        eligible = self.eligible_nodes(grid, available)
        restricted = self.node_ids is not None or self.node_filter is not None
        return sample_eligible(
            self.rng, eligible, len(available), fraction, min_nodes, type(self).__name__, restricted
        )

    def eligible_nodes(self, grid: Grid, available: Iterable[int] | None = None) -> Sequence[int]:
        """Return, sorted, the available nodes this strategy's node selection admits."""
        nodes = grid.get_node_ids() if available is None else available
        return eligible_nodes(grid, nodes, self.node_ids, self.node_filter)

    def state_dict(self) -> StrategyState:
        """Return what a resumed run needs to continue exactly where this one stopped.

        A strategy with memory (momentum, optimiser moments, control variates) extends this:
        call ``super().state_dict()`` and add its arrays and JSON-able values (and clear
        them in :meth:`reset`). The base saves the sampling RNG. Nothing here is pickled:
        arrays are ArrayRecords and values must survive ``json.dumps``.
        """
        version, internal, gauss = self.rng.getstate()
        return StrategyState(arrays={}, values={"rng": [version, list(internal), gauss]})

    def load_state_dict(self, state: StrategyState) -> None:
        """Restore what :meth:`state_dict` returned (subclasses call super() first)."""
        rng = state.values.get("rng")
        if rng is not None:
            version, internal, gauss = rng
            self.rng.setstate((version, tuple(internal), gauss))

    def reset(self) -> None:
        """Forget what earlier runs left behind, so that a new run starts afresh.

        :meth:`begin_run` calls this at the start of every new run (``start_round == 1``),
        before seeding; a resumed run (``start_round > 1``) keeps the state restored with
        :meth:`load_state_dict`. So two identical runs, on one Federation or on two
        sharing this strategy object, give identical results. A strategy with memory
        (momentum, optimiser moments, control variates) extends this: call
        ``super().reset()`` and clear what :meth:`state_dict` would save. The base keeps
        nothing besides the sampling RNG, which the run's seed sets.
        """

    def required_nodes(self) -> int:
        """The number of nodes the strategy needs before round 1 (checked by :meth:`start`)."""
        return 0

    def summary(self) -> str:
        """One line describing this strategy and its settings."""
        settings = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_") and k != "rng")
        return f"{type(self).__name__}({settings})"

    def begin_run(
        self,
        grid: Grid,
        initial_arrays: ArrayRecord,
        num_rounds: int,
        start_round: int,
        seed: int | None,
        timeout: float | None,
    ) -> None:
        """Check :meth:`start`'s arguments, :meth:`reset` and seed a new run, wait for its nodes.

        Every ``start`` loop (round-based or asynchronous) calls this first, so they refuse
        the same bad input with the same messages and report to the grid's event bus.
        """
        if not isinstance(initial_arrays, ArrayRecord):
            raise StrategyError(
                f"initial_arrays must be an ArrayRecord, got {type(initial_arrays).__name__}; "
                "wrap your model's parameters, e.g. ArrayRecord(model.state_dict())."
            )
        check_int("num_rounds", num_rounds, StrategyError)
        check_int("start_round", start_round, StrategyError, minimum=1)
        if start_round == 1:  # a resumed run's state (RNG included) was restored instead
            self.reset()
            if seed is not None:
                self.rng.seed(seed)
        # Fail before any client trains if the federation can never satisfy the minimums.
        grid.wait_for_nodes(self.required_nodes(), timeout if timeout is not None else 3600.0)
        self._events, self._run_id = grid.events, grid.run_id

    # -- the run --------------------------------------------------------------------------

    def start(
        self,
        grid: Grid,
        initial_arrays: ArrayRecord,
        num_rounds: int = 3,
        *,
        timeout: float | None = 600.0,
        train_config: ConfigSource | None = None,
        evaluate_config: ConfigSource | None = None,
        evaluate_fn: EvaluateFn | None = None,
        seed: int | None = None,
        start_round: int = 1,
        on_round_end: Callable[[Result], None] | None = None,
    ) -> Result:
        """Run ``num_rounds`` rounds of training (and evaluation) on ``grid``.

        Each round: sample nodes and send them the global arrays and the round's config
        (with ``server-round`` added), wait at most ``timeout`` seconds for replies,
        aggregate them, evaluate with the clients if the strategy asks for it, and call
        ``evaluate_fn(round, arrays)`` on the server (also once before round 1, as round 0).
        The loop stops early, after a complete round, when ``grid.request_stop()`` is called.

        Parameters
        ----------
        grid
            Where the nodes are.
        initial_arrays
            The global model before round 1.
        num_rounds
            How many rounds to run.
        timeout
            Seconds to wait for each phase's replies (default 600); nodes that have not
            replied by then count as timed out (``ErrorCode.TIMEOUT``), and the grid
            gives up on their calls. None waits forever.
        train_config, evaluate_config
            Sent to clients in the ``config`` record: a ConfigRecord, a dict, or a function of
            the round number returning one.
        evaluate_fn
            Server-side evaluation after every round.
        seed
            Seeds node sampling; the same seed gives the same choices.
        start_round
            The first round to run; above 1, the run continues one that completed rounds
            ``1 .. start_round - 1``: ``initial_arrays`` are that run's global arrays, its
            state was restored with :meth:`load_state_dict` (so ``seed`` is not applied
            again) and there is no round-0 evaluation. ``num_rounds`` is the last round.
        on_round_end
            Called after every completed round with the Result so far (used to checkpoint).
        """
        self.begin_run(grid, initial_arrays, num_rounds, start_round, seed, timeout)
        return run_rounds(
            self,
            grid,
            initial_arrays,
            num_rounds,
            start_round=start_round,
            timeout=timeout,
            train_config=train_config,
            evaluate_config=evaluate_config,
            evaluate_fn=evaluate_fn,
            on_round_end=on_round_end,
        )
