"""MLX parameters ↔ ArrayRecord: each array named by its dotted key path, restorable exactly.

An :class:`mlx.nn.Module`'s ``parameters()`` is a tree of dicts and lists of ``mx.array``;
:func:`mlx.utils.tree_flatten` names each leaf by its path, ``layers.0.weight`` (the
``weight`` of the first entry of the list ``layers``). The record uses those names, in that
order, so ``model.load_weights(list(...))`` and MLX's own ``.safetensors`` files agree with it.

Bytes, dtypes and shapes are kept bit for bit. numpy has no bfloat16, so a bfloat16 array
travels as its raw 16-bit patterns under fedlab's ``"bfloat16"`` dtype (the layout
fedlab-jax and ``ArrayRecord.from_torch_state_dict`` use) and comes back as bfloat16.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import numpy as np
from mlx.nn.layers.base import Module
from mlx.utils import tree_flatten, tree_unflatten

from fedlab import Array, ArrayRecord
from fedlab_mlx.errors import MlxRecordError

__all__ = ["load_parameters", "parameters_to_record", "record_to_parameters"]


def parameters_to_record(source: Module | dict[str, Any] | list[Any]) -> ArrayRecord:
    """An :class:`~fedlab.ArrayRecord` of a module's parameters (or of a parameter tree).

    Parameters
    ----------
    source
        An ``mlx.nn.Module`` (its ``parameters()`` are sent, trainable or not, e.g. a
        BatchNorm's running statistics too) or a tree of dicts and lists of ``mx.array``.

    Raises
    ------
    MlxRecordError
        If a leaf is not an ``mx.array``, or a dict key cannot be named (not a non-empty
        string, contains ``.``, or is all digits, which would read back as a list index).

    Examples
    --------
    >>> import mlx.nn as nn
    >>> rec = parameters_to_record(nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1)))
    >>> list(rec), rec["layers.0.weight"].shape
    (['layers.0.weight', 'layers.0.bias', 'layers.2.weight', 'layers.2.bias'], (2, 3))
    """
    tree = source.parameters() if isinstance(source, Module) else source  # type: ignore[no-untyped-call]
    _check_keys(tree, "")
    arrays: list[tuple[str, Any]] = list(tree_flatten(tree))  # type: ignore[arg-type]
    mx.eval([leaf for _, leaf in arrays if isinstance(leaf, mx.array)])
    record = ArrayRecord()
    for name, leaf in arrays:
        record[name] = _to_array(name, leaf)
    return record


def record_to_parameters(record: ArrayRecord, like: Module | dict[str, Any] | None = None) -> dict[str, Any]:
    """The parameter tree ``record`` was made from, of ``mx.array`` leaves.

    Parameters
    ----------
    record
        A record from :func:`parameters_to_record`, or one with the same names (e.g.
        FedAvg's aggregate of such records).
    like
        A module or parameter tree to check the record against: every name present, none
        extra, each shape and dtype equal. Without it the tree is rebuilt from the names.

    Raises
    ------
    MlxRecordError
        If the record does not fit ``like`` (naming the missing, unexpected or
        mismatched entries).

    Examples
    --------
    >>> import mlx.core as mx
    >>> tree = {"blocks": [{"w": mx.ones((2,))}, {"w": mx.zeros((2,), mx.bfloat16)}]}
    >>> back = record_to_parameters(parameters_to_record(tree))
    >>> type(back["blocks"]).__name__, back["blocks"][1]["w"].dtype
    ('list', mlx.core.bfloat16)
    """
    if like is not None:
        _check_fits(record, like)
    return dict(tree_unflatten([(name, _to_mlx(array)) for name, array in record.items()]))


def load_parameters(model: Module, record: ArrayRecord) -> Module:
    """Put ``record``'s arrays into ``model`` in place (and return it), after checking them.

    Unlike ``model.load_weights(..., strict=False)``, a wrong shape or dtype is refused, not
    loaded; unlike ``strict=True``, the error lists every missing and unexpected name.

    Raises
    ------
    MlxRecordError
        If the record's names, shapes or dtypes differ from ``model.parameters()``.

    Examples
    --------
    >>> import mlx.nn as nn
    >>> a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    >>> bool((load_parameters(b, parameters_to_record(a)).weight == a.weight).all())
    True
    """
    _check_fits(record, model)
    model.update(record_to_parameters(record))
    mx.eval(model.parameters())  # type: ignore[no-untyped-call]
    return model


def _check_keys(tree: Any, path: str) -> None:
    if isinstance(tree, dict):
        for key, child in tree.items():
            if not isinstance(key, str) or not key or "." in key or key.isdigit():
                raise MlxRecordError(
                    f"Key {key!r} under {path or 'the root'!r} cannot be a name segment: keys "
                    "must be non-empty strings without '.' and not all digits; rename it."
                )
            _check_keys(child, f"{path}.{key}" if path else key)
    elif isinstance(tree, list | tuple):
        for index, child in enumerate(tree):
            _check_keys(child, f"{path}.{index}" if path else str(index))


def _to_array(name: str, leaf: Any) -> Array:
    if not isinstance(leaf, mx.array):
        raise MlxRecordError(
            f"Parameter {name!r} is a {type(leaf).__name__}, not an mx.array; send only "
            "arrays (e.g. model.parameters()), or make it one with mx.array(...)."
        )
    if leaf.dtype == mx.bfloat16:
        bits = np.array(leaf.view(mx.uint16))
        return Array("bfloat16", bits.shape, np.ascontiguousarray(bits).tobytes())
    return Array.from_numpy(np.array(leaf))


def _to_mlx(array: Array) -> mx.array:
    if array.dtype == "bfloat16":
        bits = np.frombuffer(bytes(array.data), dtype="<u2").reshape(array.shape)
        return mx.array(bits).view(mx.bfloat16)
    return mx.array(array.numpy())


def _dtype_name(dtype: mx.Dtype) -> str:
    return str(dtype).removeprefix("mlx.core.")


def _check_fits(record: ArrayRecord, like: Module | dict[str, Any]) -> None:
    tree = like.parameters() if isinstance(like, Module) else like  # type: ignore[no-untyped-call]
    expected: dict[str, Any] = dict(tree_flatten(tree))
    missing = [name for name in expected if name not in record]
    unexpected = [name for name in record if name not in expected]
    if missing or unexpected:
        raise MlxRecordError(
            f"The record does not fit the model: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}; send the parameters of a model built like this one."
        )
    for name, want in expected.items():
        got = record[name]
        shape, dtype = tuple(want.shape), _dtype_name(want.dtype)
        if (got.shape, got.dtype) != (shape, dtype):
            raise MlxRecordError(
                f"Record entry {name!r} is {got.dtype}{list(got.shape)} but the model expects "
                f"{dtype}{list(shape)}; load it into a model of that shape and dtype."
            )
