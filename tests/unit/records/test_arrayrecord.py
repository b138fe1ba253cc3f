"""ArrayRecord: named arrays in a fixed order, e.g. a model's state_dict."""

from __future__ import annotations

import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from fedlab.errors import RecordError
from fedlab.records import Array, ArrayRecord


def test_list_of_numpy_arrays_is_named_by_position() -> None:
    first, second, third = np.zeros((2, 2), np.float32), np.ones(3, np.int64), np.arange(4.0)

    record = ArrayRecord([first, second, third])

    assert list(record) == ["0", "1", "2"]
    assert record["1"].dtype == "int64" and record["1"].shape == (3,)
    assert [a.tolist() for a in record.to_numpy()] == [
        first.tolist(),
        second.tolist(),
        third.tolist(),
    ]


def test_from_numpy_and_a_tuple_name_arrays_like_a_list() -> None:
    arrays = [np.zeros(2), np.ones(2)]

    assert ArrayRecord.from_numpy(arrays) == ArrayRecord(arrays) == ArrayRecord(tuple(arrays))


def test_dict_keeps_names_and_their_order() -> None:
    record = ArrayRecord({"z.weight": np.zeros(2), "a.bias": np.ones(1), "m": np.float32(3.0)})

    assert list(record) == ["z.weight", "a.bias", "m"]
    assert record["m"].shape == ()


def test_array_values_are_kept_as_the_same_objects() -> None:
    array = Array.from_numpy(np.arange(3))

    record = ArrayRecord({"w": array})

    assert record["w"] is array


def test_none_or_nothing_makes_an_empty_record() -> None:
    assert len(ArrayRecord()) == 0
    assert ArrayRecord(None) == ArrayRecord({}) == ArrayRecord([])


@pytest.mark.parametrize(
    "bad",
    [np.zeros(3), "weights", 3, (a for a in [np.zeros(1)]), {np.zeros(1).tobytes()}],
    ids=["ndarray", "str", "int", "generator", "set"],
)
def test_building_from_an_unsupported_kind_lists_the_accepted_kinds(bad: object) -> None:
    with pytest.raises(RecordError) as info:
        ArrayRecord(bad)  # type: ignore[arg-type]

    message = str(info.value)
    assert type(bad).__name__ in message
    assert "dict" in message and "state_dict" in message and "list of numpy arrays" in message


@pytest.mark.parametrize("value", [[1.0, 2.0], 3.5, "w", None])
def test_a_value_that_is_not_an_array_fails_naming_the_key_and_allowed_types(value: object) -> None:
    with pytest.raises(RecordError) as info:
        ArrayRecord({"layer.weight": value})

    message = str(info.value)
    assert "'layer.weight'" in message and type(value).__name__ in message
    assert "Array, numpy.ndarray and torch.Tensor" in message


def test_a_list_item_that_is_not_an_array_fails_naming_its_position() -> None:
    with pytest.raises(RecordError, match=r"ArrayRecord\['1'\].*list"):
        ArrayRecord([np.zeros(1), [1, 2]])


def test_non_str_keys_are_rejected() -> None:
    with pytest.raises(RecordError, match="keys must be str, got int"):
        ArrayRecord({0: np.zeros(1)})  # type: ignore[dict-item]


def test_assigning_a_numpy_array_stores_an_array_copy() -> None:
    record = ArrayRecord()
    source = np.zeros(2, np.float32)

    record["w"] = source  # type: ignore[assignment]
    source[:] = 1

    assert isinstance(record["w"], Array)
    assert record["w"].numpy().tolist() == [0.0, 0.0]


def test_to_numpy_returns_read_only_views_in_order() -> None:
    record = ArrayRecord({"b": np.ones(2), "a": np.zeros(3)})

    views = record.to_numpy()

    assert [v.shape for v in views] == [(2,), (3,)]
    assert not any(v.flags.writeable for v in views)
    assert np.shares_memory(views[0], record["b"].numpy())


def test_count_bytes_sums_the_sizes_of_all_arrays() -> None:
    record = ArrayRecord({"w": np.zeros((4, 4), np.float32), "b": np.zeros(4, np.float64)})

    assert record.count_bytes() == 4 * 4 * 4 + 4 * 8


def test_records_are_equal_only_with_the_same_names_arrays_and_order() -> None:
    a, b = np.zeros(2), np.ones(2)

    assert ArrayRecord({"x": a, "y": b}) == ArrayRecord({"x": a.copy(), "y": b.copy()})
    assert ArrayRecord({"x": a, "y": b}) != ArrayRecord({"y": b, "x": a})
    assert ArrayRecord({"x": a}) != ArrayRecord({"x": b})


def test_copy_shares_arrays_but_changing_the_copy_leaves_the_original_alone() -> None:
    original = ArrayRecord({"w": np.zeros(2), "b": np.zeros(1)})

    copied = original.copy()
    copied["w"] = Array.from_numpy(np.ones(2))
    del copied["b"]
    copied["extra"] = Array.from_numpy(np.ones(1))

    assert list(original) == ["w", "b"]
    assert original["w"].numpy().tolist() == [0.0, 0.0]
    assert original.copy()["w"] is original["w"]


def test_repr_lists_names_dtypes_and_shapes() -> None:
    record = ArrayRecord({"w": np.zeros((2, 3), np.float32)})

    assert repr(record) == "ArrayRecord({'w': float32[2, 3]})"


# --- torch ----------------------------------------------------------------------------------


def _net():  # type: ignore[no-untyped-def]
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 2, 3)
            self.bn = torch.nn.BatchNorm2d(2)
            self.fc = torch.nn.Linear(8, 3)

    torch.manual_seed(0)
    return Net()


def test_torch_state_dict_of_a_module_round_trips_values_dtypes_and_key_order() -> None:
    import torch
    state = _net().state_dict()

    back = ArrayRecord.from_torch(state).to_torch_state_dict()

    assert isinstance(back, OrderedDict)
    assert list(back) == list(state)
    for name, tensor in state.items():
        assert back[name].dtype == tensor.dtype, name
        assert back[name].shape == tensor.shape, name
        assert torch.equal(back[name], tensor), name


def test_round_tripped_state_dict_loads_into_a_fresh_module() -> None:
    import torch
    trained = _net()
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)
    fresh = _net()

    fresh.load_state_dict(ArrayRecord(trained.state_dict()).to_torch_state_dict())

    for (name, a), b in zip(trained.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name


def test_returned_tensors_are_writable_copies_that_leave_record_and_model_alone() -> None:
    import torch
    net = _net()
    record = ArrayRecord.from_torch(net.state_dict())
    before = {k: v.clone() for k, v in net.state_dict().items()}

    tensors = record.to_torch_state_dict()
    for tensor in tensors.values():
        tensor.add_(1)

    again = record.to_torch_state_dict()
    for name, tensor in before.items():
        assert torch.equal(again[name], tensor), name
        assert torch.equal(net.state_dict()[name], tensor), name


def test_changing_the_model_after_building_does_not_change_the_record() -> None:
    import torch
    net = _net()
    record = ArrayRecord(net.state_dict())
    expected = record["fc.weight"].numpy().copy()

    with torch.no_grad():
        net.fc.weight.fill_(42.0)

    np.testing.assert_array_equal(record["fc.weight"].numpy(), expected)


def test_bfloat16_state_dict_round_trips_bit_exactly() -> None:
    import torch
    torch.manual_seed(1)
    state = OrderedDict(
        [
            ("w", torch.randn(5, 7).to(torch.bfloat16)),
            ("b", torch.tensor([float("nan"), float("inf"), -0.0, 1e-40], dtype=torch.bfloat16)),
            ("s", torch.tensor(0.1, dtype=torch.bfloat16)),
        ]
    )

    record = ArrayRecord.from_torch(state)
    back = record.to_torch_state_dict()

    assert [record[k].dtype for k in record] == ["bfloat16"] * 3
    assert list(back) == ["w", "b", "s"]
    for name, tensor in state.items():
        assert back[name].dtype == torch.bfloat16
        assert torch.equal(back[name].view(torch.int16), tensor.view(torch.int16)), name


def test_bfloat16_module_round_trips_through_a_record() -> None:
    import torch
    net = _net().to(torch.bfloat16)
    state = net.state_dict()

    back = ArrayRecord(state).to_torch_state_dict()

    for name, tensor in state.items():
        assert back[name].dtype == tensor.dtype, name
        assert torch.equal(back[name], tensor), name


def test_a_dict_may_mix_tensors_numpy_arrays_and_arrays() -> None:
    import torch

    record = ArrayRecord(
        {"t": torch.ones(2), "n": np.zeros(2, np.float32), "a": Array.from_numpy(np.ones(1))}
    )

    assert [record[k].dtype for k in record] == ["float32", "float32", "float64"]


# --- torch stays lazy -----------------------------------------------------------------------


REPO_ROOT = Path(__file__).resolve().parents[3]


def _fresh_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_importing_records_does_not_import_torch() -> None:
    result = _fresh_python(
        "import fedlab.records, sys; assert 'torch' not in sys.modules, 'torch was imported'"
    )

    assert result.returncode == 0, result.stderr


def test_to_torch_state_dict_without_torch_imported_says_to_import_it() -> None:
    result = _fresh_python(
        "import numpy as np\n"
        "from fedlab.records import ArrayRecord\n"
        "from fedlab.errors import RecordError\n"
        "try:\n"
        "    ArrayRecord([np.zeros(1)]).to_torch_state_dict()\n"
        "except RecordError as e:\n"
        "    print(e)\n"
        "import sys; assert 'torch' not in sys.modules\n"
    )

    assert result.returncode == 0, result.stderr
    assert "import torch" in result.stdout
