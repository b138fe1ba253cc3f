"""Which nodes a strategy may sample: all of them, a fixed list, or those a predicate accepts."""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Iterable, Sequence

from fedlab.context import UserConfig
from fedlab.errors import StrategyError
from fedlab.server.grid import Grid

__all__ = ["NodeFilter", "eligible_nodes", "sample_eligible"]

#: A predicate over a node's ``node_config``, e.g. ``lambda cfg: cfg.get("region") == "eu"``.
NodeFilter = Callable[[UserConfig], bool]


def eligible_nodes(
    grid: Grid,
    available: Iterable[int],
    node_ids: Collection[int] | None,
    node_filter: NodeFilter | None,
) -> Sequence[int]:
    """Return the sorted ids among ``available`` that the selection admits.

    Sorting makes the later random draw depend only on the seed, never on the order in
    which a runtime happens to list its nodes. A simulated population comes pre-sorted
    and is not copied, so sampling 100 of a million nodes costs as little as of a hundred
    (a ``node_filter`` still asks every node for its config).
    """
    ascending = getattr(available, "ascending", None)
    chosen: Sequence[int]
    if node_ids is not None:
        pool = available if callable(ascending) else set(available)  # fast membership either way
        chosen = sorted(n for n in set(node_ids) if n in pool)
    elif callable(ascending):
        chosen = ascending()
    else:
        chosen = sorted(set(available))
    if node_filter is not None:
        chosen = [n for n in chosen if node_filter(grid.get_node_config(n))]
    return chosen


def sample_eligible(
    rng: random.Random,
    eligible: Sequence[int],
    num_available: int,
    fraction: float,
    min_nodes: int,
    who: str,
    restricted: bool,
) -> list[int]:
    """Draw ``max(int(fraction * len(eligible)), min_nodes)`` of ``eligible`` with ``rng``."""
    count = max(int(len(eligible) * fraction), min_nodes)
    if count <= len(eligible):
        return rng.sample(eligible, count)
    if restricted:
        raise StrategyError(
            f"{who} needs {count} nodes this round but its node selection (node_ids/node_filter) "
            f"admits only {len(eligible)} of the {num_available} available; widen the selection "
            "or lower min_train_nodes/min_evaluate_nodes."
        )
    raise StrategyError(
        f"{who} needs {count} nodes this round but only {len(eligible)} are available; "
        "lower min_train_nodes/min_evaluate_nodes or add clients."
    )
