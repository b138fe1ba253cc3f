"""MLX parameters travel as ArrayRecords named by dotted key path and come back bit for bit."""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import numpy as np
import pytest
from fedlab_mlx import MlxRecordError, load_parameters, parameters_to_record, record_to_parameters
from mlx import nn
from mlx.utils import tree_flatten

import fedlab as fl


def bits(a: mx.array) -> tuple[str, tuple[int, ...], bytes]:
    raw = a.view(mx.uint16) if a.dtype == mx.bfloat16 else a
    return str(a.dtype), tuple(a.shape), np.array(raw).tobytes()


def same_tree(a: Any, b: Any) -> bool:
    left, right = tree_flatten(a), tree_flatten(b)
    return [n for n, _ in left] == [n for n, _ in right] and all(bits(x) == bits(y) for (_, x), (_, y) in zip(left, right))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = [nn.Linear(4, 3), nn.Linear(3, 2)]
        self.norm = nn.BatchNorm(2)

    def __call__(self, x: mx.array) -> mx.array:
        return self.norm(self.blocks[1](nn.relu(self.blocks[0](x))))


def test_a_module_round_trips_bit_for_bit_with_its_dotted_names_and_structure() -> None:
    mx.random.seed(0)
    model = Net()
    record = parameters_to_record(model)
    assert list(record) == [
        "blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias",
        "norm.weight", "norm.bias", "norm.running_mean", "norm.running_var",
    ]
    assert record["blocks.0.weight"].dtype == "float32" and record["blocks.0.weight"].shape == (3, 4)
    # Through fedlab's wire format and back: the same tree, the same bits.
    wire = fl.Message(fl.RecordDict({"arrays": record}), dst_node_id=1, message_type="train")
    back = record_to_parameters(wire.content.array_record("arrays"), like=model)
    assert type(back["blocks"]) is list and same_tree(back, model.parameters())
    mx.random.seed(1)
    other = load_parameters(Net(), record)
    assert same_tree(other.parameters(), model.parameters())
    model.eval(), other.eval()
    x = mx.random.normal((5, 4))
    assert bits(other(x)) == bits(model(x))


def test_every_dtype_comes_back_unchanged_bfloat16_as_its_raw_bits() -> None:
    tree = {
        "f32": mx.array([np.nan, -0.0, 1e-45], mx.float32),
        "bf16": mx.array([1.5, -3.0, 65280.0], mx.bfloat16),
        "f16": mx.array([65504.0], mx.float16),
        "ints": [mx.array([-128, 127], mx.int8), mx.array([2**62], mx.int64), mx.array([255], mx.uint8)],
        "flag": mx.array([True, False]),
        "z": mx.array([1 - 2j], mx.complex64),
    }
    record = parameters_to_record(tree)
    assert record["bf16"].dtype == "bfloat16" and bytes(record["bf16"].data) == np.array(tree["bf16"].view(mx.uint16)).tobytes()
    back = record_to_parameters(record)
    assert same_tree(back, tree) and back["bf16"].dtype == mx.bfloat16


def test_a_record_that_does_not_fit_the_model_is_refused_naming_the_difference() -> None:
    model = nn.Linear(3, 2)
    good = parameters_to_record(model)
    before = bits(model.weight)
    extra = fl.ArrayRecord({"weight": good["weight"], "scale": good["bias"]})
    with pytest.raises(MlxRecordError, match=r"missing \['bias'\], unexpected \['scale'\]"):
        load_parameters(model, extra)
    wrong_shape = fl.ArrayRecord({"weight": np.zeros((2, 4), np.float32), "bias": good["bias"]})
    with pytest.raises(MlxRecordError, match=r"'weight' is float32\[2, 4\] but the model expects float32\[2, 3\]"):
        load_parameters(model, wrong_shape)
    wrong_dtype = fl.ArrayRecord({"weight": np.zeros((2, 3)), "bias": good["bias"]})
    with pytest.raises(MlxRecordError, match=r"'weight' is float64\[2, 3\] but the model expects float32"):
        record_to_parameters(wrong_dtype, like=model)
    assert bits(model.weight) == before  # nothing was loaded by the refused calls


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        ({"a.b": mx.zeros(1)}, "without '.'"),
        ({"0": mx.zeros(1)}, "not all digits"),
        ({"": mx.zeros(1)}, "non-empty"),
        ({"w": np.zeros(1)}, "not an mx.array"),
    ],
)
def test_trees_whose_keys_or_leaves_cannot_be_named_or_sent_are_refused(tree: Any, message: str) -> None:
    with pytest.raises(MlxRecordError, match=message):
        parameters_to_record(tree)
