"""NaturalIdPartitioner and GroupedNaturalIdPartitioner: the data's own clients."""

from __future__ import annotations

import datasets
import numpy as np
import pytest

from fedlab.datasets import GroupedNaturalIdPartitioner, NaturalIdPartitioner
from fedlab.errors import DatasetError
from tests.unit.datasets.partition_checks import assert_disjoint, assert_partition, assign, same

WRITERS = ["w3", "w1", "w2", "w1", "w3", "w3", "w4", "w5", "w2", "w6", "w7"]
DATA = datasets.Dataset.from_dict({"writer": WRITERS, "label": list(range(len(WRITERS)))})


def test_natural_id_gives_one_partition_per_id_in_sorted_order_covering_the_data() -> None:
    partitioner = NaturalIdPartitioner("writer")
    parts = assign(partitioner, DATA)
    assert partitioner.partition_id_to_natural_id == {i: f"w{i + 1}" for i in range(7)}
    assert_partition(parts, len(WRITERS))
    for pid, rows in enumerate(parts):
        assert {WRITERS[r] for r in rows} == {f"w{pid + 1}"}


def test_natural_id_is_deterministic_and_the_same_for_another_instance() -> None:
    # No seed: the data alone decides the partitions.
    assert same(
        assign(NaturalIdPartitioner("writer"), DATA), assign(NaturalIdPartitioner("writer"), DATA)
    )


def test_natural_id_works_on_integer_ids() -> None:
    data = datasets.Dataset.from_dict({"user": [5, 3, 5, 9]})
    partitioner = NaturalIdPartitioner("user")
    assert [p.tolist() for p in assign(partitioner, data)] == [[1], [0, 2], [3]]
    assert partitioner.partition_id_to_natural_id == {0: 3, 1: 5, 2: 9}


@pytest.mark.parametrize(
    ("mode", "group_sizes", "rows"),
    [
        ("allow-smaller", [3, 3, 1], 11),
        ("allow-bigger", [4, 3], 11),
        ("drop-remainder", [3, 3], None),
    ],
)
def test_grouped_natural_ids_follow_the_remainder_mode(
    mode: str, group_sizes: list[int], rows: int | None
) -> None:
    partitioner = GroupedNaturalIdPartitioner("writer", 3, mode=mode, seed=0)  # type: ignore[arg-type]
    parts = assign(partitioner, DATA)
    groups = partitioner.partition_id_to_natural_ids
    assert [len(groups[g]) for g in range(len(groups))] == group_sizes
    for pid, rows_of in enumerate(parts):
        assert {WRITERS[r] for r in rows_of} == set(groups[pid])
    used = assert_disjoint(parts)
    if rows is not None:
        assert len(used) == rows
    else:  # the rows of the dropped ids stay unassigned
        kept = {w for g in groups.values() for w in g}
        assert np.array_equal(used, [i for i, w in enumerate(WRITERS) if w in kept])


def test_grouped_natural_id_strict_mode_refuses_a_remainder() -> None:
    partitioner = GroupedNaturalIdPartitioner("writer", 3, mode="strict")
    partitioner.dataset = DATA
    with pytest.raises(DatasetError, match="remainder 1"):
        partitioner.partition_sizes()


def test_grouped_natural_id_same_seed_same_groups_other_seed_other_groups() -> None:
    def make(seed: int) -> list[np.ndarray]:
        return assign(GroupedNaturalIdPartitioner("writer", 2, seed=seed), DATA)

    assert same(make(1), make(1))
    assert not same(make(1), make(2))


def test_grouped_natural_id_without_shuffle_groups_sorted_ids() -> None:
    partitioner = GroupedNaturalIdPartitioner("writer", 2, shuffle=False)
    assign(partitioner, DATA)
    assert partitioner.partition_id_to_natural_ids[0] == ["w1", "w2"]
