"""Array: one tensor as dtype name, shape and raw little-endian bytes."""

from __future__ import annotations

import numpy as np
import pytest

from fedlab.errors import FedlabError, RecordError
from fedlab.records import ALLOWED_DTYPES, Array

NUMPY_DTYPES = [name for name in ALLOWED_DTYPES if name != "bfloat16"]


def _sample(dtype: str) -> np.ndarray:
    """A 2x3 array of ``dtype`` with distinct, non-trivial values."""
    values = np.arange(1, 7).reshape(2, 3)
    if dtype == "bool":
        return values % 2 == 0
    if dtype.startswith("complex"):
        return (values + 1j * values[::-1]).astype(dtype)
    return values.astype(dtype)


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
def test_array_from_numpy_keeps_dtype_shape_and_little_endian_bytes(dtype: str) -> None:
    source = _sample(dtype)

    array = Array.from_numpy(source)

    assert array.dtype == dtype
    assert array.shape == (2, 3)
    assert array.nbytes == source.nbytes
    assert bytes(array.data) == source.astype(source.dtype.newbyteorder("<")).tobytes()
    np.testing.assert_array_equal(array.numpy(), source)
    assert array.numpy().dtype == source.dtype


def test_every_allowed_numpy_dtype_has_the_documented_item_size() -> None:
    for name in NUMPY_DTYPES:
        assert np.dtype(name).itemsize == ALLOWED_DTYPES[name], name


@pytest.mark.parametrize("dtype", [">i4", ">f8", ">c16", ">u2"])
def test_big_endian_numpy_input_is_stored_little_endian_with_the_same_values(dtype: str) -> None:
    source = np.arange(5).astype(dtype)

    array = Array.from_numpy(source)

    assert array.dtype == np.dtype(dtype).name
    assert bytes(array.data) == source.astype(np.dtype(dtype).newbyteorder("<")).tobytes()
    np.testing.assert_array_equal(array.numpy(), source)


def test_non_contiguous_numpy_input_is_stored_in_c_order() -> None:
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    strided = base[::2, 1::2]
    transposed = base.T

    assert Array.from_numpy(strided).numpy().tolist() == strided.tolist()
    assert Array.from_numpy(transposed).numpy().tolist() == transposed.tolist()
    assert Array.from_numpy(transposed).shape == (6, 4)


def test_numpy_scalars_and_zero_size_arrays_are_arrays_too() -> None:
    scalar = Array.from_numpy(np.float64(2.5))
    empty = Array.from_numpy(np.zeros((0, 3), dtype=np.int16))

    assert scalar.shape == () and scalar.numpy() == 2.5
    assert empty.shape == (0, 3) and empty.nbytes == 0 and empty.numpy().shape == (0, 3)


def test_numpy_view_shares_the_arrays_own_buffer_instead_of_copying() -> None:
    array = Array.from_numpy(np.arange(12, dtype=np.float32).reshape(3, 4))

    view = array.numpy()

    assert np.shares_memory(view, np.frombuffer(array.data, dtype=np.uint8))
    assert np.shares_memory(view, array.numpy())


def test_numpy_view_is_read_only() -> None:
    view = Array.from_numpy(np.zeros(3, dtype=np.float32)).numpy()

    assert not view.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        view[0] = 1.0


def test_copy_of_numpy_view_is_writable_and_leaves_the_array_unchanged() -> None:
    array = Array.from_numpy(np.zeros(3, dtype=np.float32))

    mine = array.numpy().copy()
    mine[0] = 7.0

    assert array.numpy().tolist() == [0.0, 0.0, 0.0]


def test_changing_the_source_numpy_array_after_building_does_not_change_the_array() -> None:
    source = np.zeros(4, dtype=np.int32)
    array = Array.from_numpy(source)

    source[:] = 9

    assert array.numpy().tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize(
    "make_view",
    [
        lambda buf: buf,
        lambda buf: memoryview(buf),
        lambda buf: memoryview(buf).toreadonly(),
    ],
    ids=["bytearray", "memoryview", "readonly-memoryview"],
)
def test_changing_a_mutable_source_buffer_after_building_does_not_change_the_array(
    make_view,
) -> None:
    buffer = bytearray(b"\x01\x02\x03\x04")
    array = Array("uint8", (4,), make_view(buffer))

    buffer[0] = 99

    assert array.numpy().tolist() == [1, 2, 3, 4]


def test_array_built_from_bytes_or_a_view_of_bytes_keeps_them_without_copying() -> None:
    payload = b"\x00" * 4 + np.arange(3, dtype="<f4").tobytes()

    from_bytes = Array("float32", (1,), payload[:4])
    from_view = Array("float32", (3,), memoryview(payload)[4:])

    assert from_view.numpy().tolist() == [0.0, 1.0, 2.0]
    assert np.shares_memory(from_view.numpy(), np.frombuffer(payload, dtype=np.uint8))
    assert from_bytes.numpy().tolist() == [0.0]


@pytest.mark.parametrize(
    "source",
    [
        np.array([object(), 1], dtype=object),
        np.array(["a", "bc"]),
        np.array([b"a"]),
        np.array(["2024-01-01"], dtype="datetime64[D]"),
        np.array([1], dtype="timedelta64[s]"),
        np.zeros(2, dtype=[("x", "<i4"), ("y", "<f4")]),
    ],
    ids=["object", "str", "bytes", "datetime64", "timedelta64", "structured"],
)
def test_numpy_input_of_a_disallowed_dtype_fails_naming_the_dtype_and_the_allowed_list(
    source: np.ndarray,
) -> None:
    with pytest.raises(RecordError) as info:
        Array.from_numpy(source)

    message = str(info.value)
    assert str(source.dtype) in message
    assert all(name in message for name in ALLOWED_DTYPES)


def test_unknown_dtype_name_fails_naming_it_and_the_allowed_list() -> None:
    with pytest.raises(RecordError, match="'float128'") as info:
        Array("float128", (1,), bytes(16))

    assert all(name in str(info.value) for name in ALLOWED_DTYPES)


def test_data_of_the_wrong_size_fails_saying_how_many_bytes_were_needed() -> None:
    with pytest.raises(RecordError, match="needs 24 bytes of data, got 20"):
        Array("float32", (2, 3), bytes(20))


@pytest.mark.parametrize("shape", [(-1,), (2.0,), (True, 2), ("3",)])
def test_shape_with_something_other_than_non_negative_ints_fails(shape: tuple) -> None:
    with pytest.raises(RecordError, match="shape"):
        Array("uint8", shape, b"")


def test_data_that_is_not_a_buffer_fails_pointing_to_from_numpy() -> None:
    with pytest.raises(RecordError, match=r"Array\.from_numpy"):
        Array("uint8", (3,), [1, 2, 3])  # type: ignore[arg-type]


def test_numpy_integer_dimensions_are_accepted_and_stored_as_ints() -> None:
    array = Array("uint8", (np.int64(2), np.int32(2)), bytes(4))

    assert array.shape == (2, 2)
    assert all(type(d) is int for d in array.shape)


def test_bfloat16_array_cannot_become_numpy_and_says_what_to_use_instead() -> None:
    array = Array("bfloat16", (2,), bytes(4))

    with pytest.raises(RecordError, match="to_torch_state_dict"):
        array.numpy()


def test_arrays_with_the_same_dtype_shape_and_bytes_are_equal() -> None:
    a = Array.from_numpy(np.arange(4, dtype=np.int32))

    assert a == Array("int32", (4,), np.arange(4, dtype="<i4").tobytes())
    assert a != Array.from_numpy(np.arange(4, dtype=np.int64))
    assert a != Array.from_numpy(np.arange(4, dtype=np.int32).reshape(2, 2))
    assert a != Array.from_numpy(np.arange(1, 5, dtype=np.int32))


def test_arrays_are_unhashable_because_they_compare_by_value() -> None:
    with pytest.raises(TypeError):
        hash(Array.from_numpy(np.zeros(1)))


def test_record_errors_can_be_caught_as_fedlab_errors_or_type_errors() -> None:
    for catch in (FedlabError, TypeError):
        with pytest.raises(catch):
            Array("nope", (), b"")


def test_repr_shows_dtype_shape_and_size() -> None:
    assert repr(Array.from_numpy(np.zeros((2, 3), np.float32))) == (
        "Array(dtype='float32', shape=(2, 3), nbytes=24)"
    )


# --- torch ----------------------------------------------------------------------------------

TORCH_DTYPES = list(ALLOWED_DTYPES)


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
def test_torch_tensor_of_every_allowed_dtype_round_trips_bit_exactly(dtype: str) -> None:
    import torch
    torch_dtype = getattr(torch, dtype)
    tensor = torch.arange(-3, 3).reshape(2, 3)
    if dtype.startswith("uint"):
        tensor = tensor + 3
    tensor = tensor.to(torch_dtype)

    array = Array.from_torch(tensor)
    back = array.torch()

    assert array.dtype == dtype
    assert array.shape == (2, 3)
    assert back.dtype == torch_dtype
    assert torch.equal(back, tensor)


def test_bfloat16_tensor_round_trips_bit_exactly_including_special_values() -> None:
    import torch
    tensor = torch.tensor(
        [1.0, -0.0, 3.140625, 1e-38, 3e38, float("inf"), float("-inf"), float("nan")],
        dtype=torch.bfloat16,
    )

    back = Array.from_torch(tensor).torch()

    assert back.dtype == torch.bfloat16
    assert torch.equal(back.view(torch.int16), tensor.view(torch.int16))


def test_scalar_bfloat16_tensor_round_trips() -> None:
    import torch
    tensor = torch.tensor(1.5, dtype=torch.bfloat16)

    back = Array.from_torch(tensor).torch()

    assert back.shape == () and back.dtype == torch.bfloat16 and back.item() == 1.5


def test_non_contiguous_and_grad_tracking_tensors_are_copied_in_c_order() -> None:
    import torch
    weight = torch.arange(6.0).reshape(2, 3).requires_grad_()

    array = Array.from_torch(weight.T)

    assert array.shape == (3, 2)
    assert array.numpy().tolist() == weight.detach().T.tolist()


def test_conjugated_and_negated_tensor_views_keep_their_values() -> None:
    import torch
    conj = torch.tensor([1 + 2j, 3 - 4j]).conj()
    neg = torch.tensor([1.0, 2.0])._neg_view()

    assert Array.from_torch(conj).numpy().tolist() == [1 - 2j, 3 + 4j]
    assert Array.from_torch(neg).numpy().tolist() == [-1.0, -2.0]


def test_changing_the_source_tensor_after_building_does_not_change_the_array() -> None:
    import torch
    tensor = torch.zeros(3)
    array = Array.from_torch(tensor)

    tensor += 5

    assert array.numpy().tolist() == [0.0, 0.0, 0.0]


def test_torch_returns_a_writable_copy_that_leaves_the_array_unchanged() -> None:
    import torch
    array = Array.from_numpy(np.zeros(3, dtype=np.float32))

    tensor = array.torch()
    tensor += 1

    assert isinstance(tensor, torch.Tensor)
    assert array.numpy().tolist() == [0.0, 0.0, 0.0]


def test_torch_tensor_of_a_disallowed_dtype_fails_naming_the_dtype_and_the_allowed_list() -> None:
    import torch  # torch 2.13 (pinned by the Makefile) has float8 dtypes

    with pytest.raises(RecordError, match="float8_e4m3fn") as info:
        Array.from_torch(torch.zeros(2, dtype=torch.float8_e4m3fn))

    assert all(name in str(info.value) for name in ALLOWED_DTYPES)


def test_from_torch_with_something_other_than_a_tensor_fails_naming_its_type() -> None:
    import torch  # noqa: F401  (from_torch only recognises torch once it is imported)

    with pytest.raises(RecordError, match="ndarray"):
        Array.from_torch(np.zeros(2))


def test_an_array_over_a_frozen_buffer_keeps_it_without_copying_and_checks_its_size() -> None:
    import mmap

    data = np.arange(4, dtype=np.float32).tobytes()
    frozen = mmap.mmap(-1, len(data))
    frozen.write(data)
    view = memoryview(frozen).toreadonly()
    array = Array.over_frozen_buffer("float32", (4,), view)
    assert array.numpy().tolist() == [0.0, 1.0, 2.0, 3.0]
    assert np.shares_memory(array.numpy(), np.frombuffer(frozen, dtype=np.float32))
    with pytest.raises(RecordError, match="needs 12 bytes"):
        Array.over_frozen_buffer("float32", (3,), view)
    with pytest.raises(RecordError, match="read-only memoryview"):
        Array.over_frozen_buffer("float32", (4,), memoryview(bytearray(data)))
    del array, view
