"""Pytrees travel as ArrayRecords named by key path and come back bit for bit."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fedlab_jax import PytreeRecordError, leaf_names, nnx_apply, pytree_to_record, record_to_pytree
from flax import nnx

import fedlab as fl


def same_bits(a: Any, b: Any) -> bool:
    left, right = np.asarray(a), np.asarray(b)
    return left.dtype == right.dtype and left.shape == right.shape and left.tobytes() == right.tobytes()


def assert_same_tree(a: Any, b: Any) -> None:
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    assert all(same_bits(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


NESTED = {
    "encoder": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3), "bias": np.float32([np.nan, -0.0, 1e-45])},
    "blocks": [np.int8([-128, 127]), (np.uint8([255]), np.bool_([True, False])), [np.float64([np.pi])]],
    "pair": (np.int64(-(2**62)), {"half": np.float16([65504.0]), "bf": jnp.array([1.5, -3.0], jnp.bfloat16)}),
    "scalar": np.complex64(1 - 2j),
}


def test_nested_dicts_lists_and_tuples_round_trip_bit_for_bit_from_the_names_alone() -> None:
    record = pytree_to_record(NESTED)
    back = record_to_pytree(record, as_numpy=True)
    assert_same_tree(back, NESTED)
    assert type(back["pair"]) is tuple and type(back["blocks"]) is list and type(back["blocks"][1]) is tuple
    # The record survives fedlab's wire format unchanged.
    wire = fl.Message(fl.RecordDict({"arrays": record}), dst_node_id=1, message_type="train")
    assert record_to_pytree(wire.content.array_record("arrays"), like=NESTED, as_numpy=True)["encoder"]["bias"].tobytes() == NESTED["encoder"]["bias"].tobytes()


def test_names_are_key_paths_marking_lists_tuples_and_integer_keys() -> None:
    assert list(pytree_to_record(NESTED)) == [
        "blocks/[0]", "blocks/[1]/(0)", "blocks/[1]/(1)", "blocks/[2]/[0]", "encoder/bias", "encoder/kernel",
        "pair/(0)", "pair/(1)/bf", "pair/(1)/half", "scalar",
    ]
    assert leaf_names({3: np.zeros(1), 10: np.zeros(1)}) == ["#3", "#10"]
    assert record_to_pytree(pytree_to_record({3: np.zeros(1), 10: np.ones(1)}), as_numpy=True)[10][0] == 1.0


def test_leaves_come_back_as_jax_arrays_unless_jax_would_change_their_dtype() -> None:
    back = record_to_pytree(pytree_to_record(NESTED))
    assert isinstance(back["encoder"]["kernel"], jax.Array)
    assert back["pair"][1]["bf"].dtype == jnp.bfloat16
    assert isinstance(back["blocks"][2][0], np.ndarray) and back["blocks"][2][0].dtype == np.float64  # x64 off
    assert_same_tree(back, NESTED)


class Net(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.layers = nnx.List([nnx.Linear(4, 3, rngs=rngs), nnx.Linear(3, 2, rngs=rngs)])
        self.norm = nnx.BatchNorm(2, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.norm(self.layers[1](self.layers[0](x)))


def test_a_flax_nnx_state_round_trips_and_loads_back_into_the_module() -> None:
    model = Net(nnx.Rngs(0))
    _, state = nnx.split(model)
    record = pytree_to_record(state)
    assert "layers/#0/kernel/.value" in record and "norm/mean/.value" in record
    back = record_to_pytree(record, like=nnx.split(Net(nnx.Rngs(1)))[1])
    assert isinstance(back, nnx.State)
    assert_same_tree(back, state)
    other = Net(nnx.Rngs(1))
    nnx.update(other, back)
    assert same_bits(other.layers[0].kernel[...], model.layers[0].kernel[...])
    model.eval()
    apply, fresh = nnx_apply(model)
    x = jnp.ones((2, 4))
    assert same_bits(apply(record_to_pytree(pytree_to_record(fresh), like=fresh), x), model(x))


def test_linen_params_round_trip_and_give_the_same_outputs() -> None:
    model = nn.Sequential([nn.Dense(5), nn.relu, nn.Dense(2)])
    x = jnp.ones((3, 7))
    params = model.init(jax.random.key(0), x)
    record = pytree_to_record(params)
    assert list(record) == ["params/layers_0/bias", "params/layers_0/kernel", "params/layers_2/bias", "params/layers_2/kernel"]
    back = record_to_pytree(record)
    assert_same_tree(back, params)
    assert same_bits(model.apply(back, x), model.apply(params, x))


def test_an_optax_state_round_trips_with_like() -> None:
    import optax

    params = {"w": jnp.ones((2, 2))}
    state = optax.adam(0.1).init(params)
    back = record_to_pytree(pytree_to_record(state), like=state)
    assert_same_tree(back, state)
    assert type(back[0]).__name__ == "ScaleByAdamState"


def test_a_record_that_does_not_fit_the_tree_is_refused_naming_the_difference() -> None:
    tree = {"w": np.zeros((2, 3), np.float32), "b": np.zeros(3, np.float32)}
    with pytest.raises(PytreeRecordError, match=r"missing \['b'\], unexpected \['c'\]"):
        record_to_pytree(fl.ArrayRecord({"w": tree["w"], "c": tree["b"]}), like=tree)
    with pytest.raises(PytreeRecordError, match=r"'w' is float64\[2, 3\] but the pytree expects float32\[2, 3\]"):
        record_to_pytree(fl.ArrayRecord({"w": np.zeros((2, 3)), "b": tree["b"]}), like=tree)


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        ({"a/b": np.zeros(1)}, "without '/'"),
        ({"[0]": np.zeros(1)}, "not start with"),
        ({(1, 2): np.zeros(1)}, "only string and integer keys"),
        ({"key": jax.random.key(0)}, "PRNG key"),
        ({"name": "text"}, "not an array"),
    ],
)
def test_trees_whose_keys_or_leaves_cannot_be_named_or_sent_are_refused(tree: Any, message: str) -> None:
    with pytest.raises(PytreeRecordError, match=message):
        pytree_to_record(tree)


def test_attribute_names_need_like_to_come_back() -> None:
    _, state = nnx.split(nnx.Linear(2, 2, rngs=nnx.Rngs(0)))
    with pytest.raises(PytreeRecordError, match="pass like="):
        record_to_pytree(pytree_to_record(state))


def test_an_empty_tree_and_a_bare_leaf_round_trip() -> None:
    assert record_to_pytree(pytree_to_record({})) == {}
    leaf = np.float32(-0.0)
    assert same_bits(record_to_pytree(pytree_to_record(leaf), as_numpy=True), leaf)
