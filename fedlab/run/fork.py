"""`fork`: a new run that starts from the checkpoint an earlier run kept of round k.

``Federation(..., checkpoint_dir=path, checkpoint_keep="all")`` keeps every round's
checkpoint in ``path/rounds/round-<k>/`` (as well as the latest in ``path``);
``fed.fork(round=k, ...)`` calls :func:`fork` with a variant of the federation.
"""

from __future__ import annotations

import dataclasses

from fedlab.errors import FederationError
from fedlab.run.resume import for_strategy, kept_round
from fedlab.run.runner import Runner
from fedlab.run.spec import RunSpec
from fedlab.server import Result

__all__ = ["fork"]


def fork(parent: RunSpec, child: RunSpec, runner: Runner, round: int, rounds: int | None) -> Result:
    """Run ``child`` from ``parent``'s kept checkpoint of round ``round`` up to round ``rounds``.

    The fork starts from that checkpoint as kept: global arrays, every node's
    ``context.state``, the run id, the History and the metrics of rounds ``1 .. round``
    are the parent's, bit for bit. It then runs rounds ``round + 1 .. rounds`` (by default
    the parent's number) with the child's strategy and config, as ``resume()`` of that
    checkpoint would with them. A strategy of the parent's class continues the parent's
    state (RNG, momentum, moments); another class starts with its memory empty but samples
    clients with the parent's RNG, so the fork trains the clients the parent would have
    trained. The parent's checkpoints are left as they are; the child writes its own only
    when it has a ``checkpoint_dir``.

    Raises
    ------
    FederationError
        If the parent has no strategy or kept no checkpoints.
    CheckpointError
        If round ``round`` was not kept (the message lists the kept rounds).
    """
    if parent.checkpoint_dir is None or parent.strategy is None or child.strategy is None:
        raise FederationError(
            "fork() starts from the checkpoints a run kept: build the federation with a "
            "strategy, checkpoint_dir=... and checkpoint_keep='all', run it, then fork."
        )
    saved = for_strategy(kept_round(parent.checkpoint_dir, round), child.strategy)
    if child.checkpoint_dir is None:
        child = dataclasses.replace(child, checkpoint_keep="latest")
    total = saved.num_rounds if rounds is None else rounds
    return runner.run(child, total, saved=saved)
