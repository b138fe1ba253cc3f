"""Properties every row partitioner keeps for any dataset size, partition count and seed."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fedlab.datasets import (
    DirichletPartitioner,
    ExponentialPartitioner,
    IidPartitioner,
    InnerDirichletPartitioner,
    LinearPartitioner,
    PathologicalPartitioner,
    ShardPartitioner,
    SizePartitioner,
    SquarePartitioner,
)
from tests.unit.datasets.partition_checks import (
    assert_disjoint,
    assert_partition,
    assign,
    labelled,
    same,
)

PROPERTY = settings(max_examples=25, deadline=None)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


@PROPERTY
@given(n=st.integers(10, 400), k=st.integers(1, 10), seed=seeds)
def test_iid_covers_every_row_with_sizes_within_one(n: int, k: int, seed: int) -> None:
    parts = assign(IidPartitioner(k, seed=seed), labelled(n))
    assert_partition(parts, n)
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1
    assert same(parts, assign(IidPartitioner(k, seed=seed), labelled(n)))


@PROPERTY
@given(
    n=st.integers(60, 400),
    k=st.integers(1, 4),
    seed=seeds,
    family=st.sampled_from([LinearPartitioner, SquarePartitioner, ExponentialPartitioner]),
)
def test_id_to_size_partitioners_cover_every_row_and_grow_with_the_id(
    n: int, k: int, seed: int, family: type
) -> None:
    parts = assign(family(k, seed=seed), labelled(n))
    assert_partition(parts, n)
    sizes = [len(p) for p in parts]
    assert sizes == sorted(sizes)


@PROPERTY
@given(data=st.data(), n=st.integers(10, 300), seed=seeds)
def test_size_partitioner_is_disjoint_with_exactly_the_requested_sizes(
    data: st.DataObject, n: int, seed: int
) -> None:
    sizes = data.draw(st.lists(st.integers(0, n // 4), min_size=1, max_size=4))
    parts = assign(SizePartitioner(sizes, seed=seed), labelled(n))
    assert [len(p) for p in parts] == sizes
    assert len(assert_disjoint(parts)) == sum(sizes)


@PROPERTY
@given(
    k=st.integers(1, 8),
    classes=st.integers(2, 6),
    alpha=st.floats(0.05, 100.0),
    balancing=st.booleans(),
    seed=seeds,
)
def test_dirichlet_always_covers_every_row(
    k: int, classes: int, alpha: float, balancing: bool, seed: int
) -> None:
    data = labelled(240, classes)
    make = lambda: DirichletPartitioner(
        k,
        "label",
        alpha,
        min_partition_size=0,
        self_balancing=balancing,
        seed=seed,
    )
    parts = assign(make(), data)
    assert_partition(parts, 240)
    assert same(parts, assign(make(), data))


@PROPERTY
@given(data=st.data(), classes=st.integers(2, 6), alpha=st.floats(0.05, 100.0), seed=seeds)
def test_inner_dirichlet_meets_every_size_exactly(
    data: st.DataObject, classes: int, alpha: float, seed: int
) -> None:
    sizes = data.draw(st.lists(st.integers(0, 60), min_size=1, max_size=4))
    parts = assign(
        InnerDirichletPartitioner(sizes, "label", alpha, seed=seed), labelled(240, classes)
    )
    assert [len(p) for p in parts] == sizes
    assert len(assert_disjoint(parts)) == sum(sizes)


@PROPERTY
@given(
    k=st.integers(1, 12),
    per=st.integers(1, 5),
    mode=st.sampled_from(["random", "deterministic", "first-deterministic"]),
    seed=seeds,
)
def test_pathological_partitions_hold_exactly_k_classes(
    k: int, per: int, mode: str, seed: int
) -> None:
    labels = np.arange(600) % 6
    parts = assign(
        PathologicalPartitioner(k, "label", per, class_assignment=mode, seed=seed),  # type: ignore[arg-type]
        labelled(600, 6),
    )
    assert all(len(np.unique(labels[p])) == per for p in parts)
    assert_disjoint(parts)


@PROPERTY
@given(k=st.integers(1, 10), s=st.integers(1, 4), seed=seeds)
def test_shard_partitions_all_have_s_shards_of_equal_size(k: int, s: int, seed: int) -> None:
    parts = assign(
        ShardPartitioner(k, "label", num_shards_per_partition=s, seed=seed), labelled(400)
    )
    assert {len(p) for p in parts} == {s * (400 // (k * s))}
    assert_disjoint(parts)
