"""`Branching`: a Federation's variants and forks, runs that branch off from one federation."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from fedlab.run import Runner, Settings, fork
from fedlab.server import Result
from fedlab.strategy import ConfigSource, Strategy

if TYPE_CHECKING:
    from typing_extensions import Self

    from fedlab.datasets import FederatedDataset

__all__ = ["Branching"]


class Branching(Settings):
    """The part of :class:`~fedlab.Federation` that makes variants of it and forks its runs."""

    _runner: Runner

    def variant(
        self,
        *,
        strategy: Strategy | None = None,
        config: ConfigSource | None = None,
        dataset: FederatedDataset | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
    ) -> Self:
        """A new Federation like this one but for ``strategy``, ``config`` or ``dataset``.

        Same ClientApp, seed and backend (and clients and split unless ``dataset`` gives
        another partitioning); give each variant a new strategy object. It writes
        checkpoints only to the ``checkpoint_dir`` given here.
        """
        spec = self.spec.varied(
            strategy=strategy, config=config, dataset=dataset, checkpoint_dir=checkpoint_dir
        )
        federation = type(self).__new__(type(self))
        Settings.__init__(federation, spec)
        federation._runner = Runner()
        return federation

    def fork(
        self,
        round: int,
        *,
        strategy: Strategy | None = None,
        config: ConfigSource | None = None,
        rounds: int | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
    ) -> Result:
        """Start a new run from this federation's kept checkpoint of round ``round``.

        Needs ``checkpoint_keep="all"``. Rounds ``1 .. round`` are the parent's bit for bit;
        the rest runs with ``strategy`` and ``config`` (default: the parent's) up to round
        ``rounds``, exactly as :meth:`resume` of that checkpoint would with them;
        :func:`fedlab.run.fork` says what a strategy of another class keeps.
        ``checkpoint_dir`` is where the fork writes checkpoints (default: none). Show parent
        and fork together with ``fl.compare({"parent": parent, "fork": fed.fork(...)})``.

        Raises
        ------
        CheckpointError
            If round ``round`` was not kept (the message lists the kept rounds).
        """
        child = self.variant(strategy=strategy, config=config, checkpoint_dir=checkpoint_dir)
        return fork(self.spec, child.spec, child._runner, round, rounds)
