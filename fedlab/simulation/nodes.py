"""Node ids of a simulated population, held compactly so a million nodes cost megabytes."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import overload

import numpy as np
import numpy.typing as npt

from fedlab.message import SERVER_NODE_ID

__all__ = ["AscendingNodeIds", "NodeIdList", "draw_node_ids", "make_node_ids"]


def make_node_ids(num_nodes: int, seed: int | None) -> list[int]:
    """Return ``num_nodes`` distinct random 63-bit node ids, reproducible for a seed.

    Node ids are deliberately not 0..n-1, so that code relying on them being partition
    ids fails in simulation as it would in a deployment; use ``node_config["partition-id"]``.
    """
    return [int(v) for v in draw_node_ids(num_nodes, seed)]


def draw_node_ids(num_nodes: int, seed: int | None) -> npt.NDArray[np.int64]:
    """:func:`make_node_ids` as an int64 array, drawn in blocks to keep memory flat."""
    rng = random.Random(seed)
    ids = np.empty(num_nodes, dtype=np.int64)
    block = 1 << 16
    for start in range(0, num_nodes, block):
        stop = min(start + block, num_nodes)
        ids[start:stop] = [rng.getrandbits(63) for _ in range(stop - start)]
    if SERVER_NODE_ID not in ids and np.unique(ids).size == num_nodes:
        return ids
    # A repeat (or the server's id) among 2**63 values: draw again, skipping the clashes,
    # which gives the same ids as drawing one by one from the start.
    rng = random.Random(seed)
    chosen: list[int] = []
    seen = {SERVER_NODE_ID}
    while len(chosen) < num_nodes:
        node_id = rng.getrandbits(63)
        if node_id not in seen:
            seen.add(node_id)
            chosen.append(node_id)
    return np.array(chosen, dtype=np.int64)


class _IdArray(Sequence[int]):
    """A read-only sequence of ints over a one-dimensional int64 array."""

    __slots__ = ("_values",)

    def __init__(self, values: npt.NDArray[np.int64]) -> None:
        self._values = values

    def __len__(self) -> int:
        return int(self._values.size)

    @overload
    def __getitem__(self, index: int) -> int: ...

    @overload
    def __getitem__(self, index: slice) -> list[int]: ...

    def __getitem__(self, index: int | slice) -> int | list[int]:
        if isinstance(index, slice):
            return [int(v) for v in self._values[index]]
        return int(self._values[index])

    def __iter__(self) -> Iterator[int]:
        return iter(self._values.tolist())


class NodeIdList(_IdArray):
    """A read-only sequence of distinct node ids, in partition order, backed by one array.

    ``len``, indexing, ``in`` (a binary search) and :meth:`index_of` cost O(log n) at
    most, so strategies can sample from a population of millions without copying it;
    :meth:`ascending` gives the same ids sorted, as sampling wants them.
    """

    __slots__ = ("_order", "_sorted")

    def __init__(self, ids: Sequence[int] | npt.NDArray[np.int64]) -> None:
        values = np.asarray(ids, dtype=np.int64)
        values.flags.writeable = False
        super().__init__(values)
        self._order = np.argsort(values, kind="stable")
        self._sorted = values[self._order]

    def __contains__(self, node_id: object) -> bool:
        return isinstance(node_id, int) and self.index_of(node_id) is not None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, NodeIdList):
            return bool(np.array_equal(self._values, other._values))
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(other) == len(self) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        head = ", ".join(str(v) for v in self._values[:3].tolist())
        return f"NodeIdList([{head}{', ...' if len(self) > 3 else ''}], n={len(self)})"

    def has_repeats(self) -> bool:
        """True if some id appears more than once."""
        return bool(np.any(self._sorted[1:] == self._sorted[:-1]))

    def index_of(self, node_id: int) -> int | None:
        """Return the position (partition index) of ``node_id``, or None if it is not here."""
        pos = _find(self._sorted, node_id)
        return None if pos is None else int(self._order[pos])

    def ascending(self) -> AscendingNodeIds:
        """The same ids in ascending order, as a sequence that shares this one's memory."""
        return AscendingNodeIds(self._sorted)


class AscendingNodeIds(_IdArray):
    """Sorted node ids (a view of :class:`NodeIdList`'s sorted array)."""

    __slots__ = ()

    def __contains__(self, node_id: object) -> bool:
        return isinstance(node_id, int) and _find(self._values, node_id) is not None


def _find(ascending: npt.NDArray[np.int64], node_id: int) -> int | None:
    """Position of ``node_id`` in the sorted array ``ascending``, or None."""
    if not -(2**63) <= node_id < 2**63:
        return None
    pos = int(np.searchsorted(ascending, node_id))
    return pos if pos < ascending.size and int(ascending[pos]) == node_id else None
