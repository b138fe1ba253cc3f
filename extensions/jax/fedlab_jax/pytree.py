"""Pytrees ↔ ArrayRecord: each leaf named by its key path, the tree restorable exactly.

A leaf's name is its key path joined with ``/``, one segment per level:

=====================  ===========  ==============================================
level                  segment      example
=====================  ===========  ==============================================
dict key (a string)    ``key``      ``params/Dense_0/kernel``
dict key (an integer)  ``#3``       ``layers/#0/kernel/.value`` (Flax NNX lists)
list index             ``[2]``      ``blocks/[2]/w``
tuple index            ``(1)``      ``pair/(1)``
attribute              ``.name``    ``.value`` (a Flax NNX ``Variable``)
flattened child        ``{0}``      a custom node without keys
=====================  ===========  ==============================================

Nested dicts, lists and tuples come back from the names alone (:func:`record_to_pytree`
without ``like``); any other pytree (``nnx.State``, ``FrozenDict``, a namedtuple, Optax
states) comes back with ``like=`` a tree of the same structure, e.g. the initial parameters.
Bytes, dtypes and shapes are kept bit for bit.
"""

from __future__ import annotations

import re
from typing import Any

import jax
import numpy as np

from fedlab import Array, ArrayRecord
from fedlab_jax.errors import PytreeRecordError

__all__ = ["leaf_names", "pytree_to_record", "record_to_pytree"]

_SEPARATOR = "/"
_RESERVED_START = ("#", "[", "(", ".", "{")
_INDEX = re.compile(r"(?:#(-?\d+)|\[(\d+)\]|\((\d+)\)|\.(.+)|\{(\d+)\})")


def leaf_names(tree: Any) -> list[str]:
    """The ArrayRecord names of ``tree``'s leaves, in :func:`jax.tree_util.tree_leaves` order.

    Examples
    --------
    >>> leaf_names({"dense": {"kernel": 0, "bias": 1}, "blocks": [2, (3, 4)]})
    ['blocks/[0]', 'blocks/[1]/(0)', 'blocks/[1]/(1)', 'dense/bias', 'dense/kernel']
    """
    paths, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [_name(tree, path) for path, _ in paths]


def pytree_to_record(tree: Any) -> ArrayRecord:
    """An :class:`~fedlab.ArrayRecord` of ``tree``'s leaves, each named by its key path.

    Leaves may be JAX or numpy arrays or Python numbers (which become 0-d arrays); the
    record copies their bytes, so later changes to the tree do not reach it.

    Raises
    ------
    PytreeRecordError
        If a leaf is a PRNG key or another object that is not an array, or a dict key
        cannot be named (not a string or integer, contains ``/``, or starts with one of
        ``# [ ( . {``).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> rec = pytree_to_record({"w": jnp.ones((2, 3)), "layers": [jnp.zeros(3)]})
    >>> list(rec), rec["w"].shape
    (['layers/[0]', 'w'], (2, 3))
    """
    paths, _ = jax.tree_util.tree_flatten_with_path(tree)
    record = ArrayRecord()
    for path, leaf in paths:
        name = _name(tree, path)
        record[name] = _to_array(name, leaf)
    return record


def record_to_pytree(record: ArrayRecord, like: Any = None, *, as_numpy: bool = False) -> Any:
    """The pytree ``record`` was made from.

    Parameters
    ----------
    record
        A record from :func:`pytree_to_record` (or one with the same names, e.g. FedAvg's
        aggregate of such records).
    like
        A pytree of the same structure (its leaves are not read, only their names, shapes
        and dtypes are checked). Needed for anything but nested dicts, lists and tuples.
    as_numpy
        Return numpy leaves. By default leaves are JAX arrays, except dtypes JAX cannot hold
        unchanged (64-bit ones while ``jax_enable_x64`` is off), which stay numpy so that no
        bit is lost.

    Raises
    ------
    PytreeRecordError
        If the names do not fit ``like`` (naming the missing and unexpected ones), a shape or
        dtype differs from ``like``'s, or without ``like`` a name needs it (an attribute).

    Examples
    --------
    >>> import numpy as np
    >>> tree = {"w": np.ones(2, np.float32), "pair": (np.zeros(1), [np.int8(3)])}
    >>> back = record_to_pytree(pytree_to_record(tree), as_numpy=True)
    >>> type(back["pair"]).__name__, type(back["pair"][1]).__name__, back["pair"][1][0].dtype
    ('tuple', 'list', dtype('int8'))
    """
    if like is None:
        return _rebuild({name: _leaf(array, as_numpy) for name, array in record.items()})
    paths, treedef = jax.tree_util.tree_flatten_with_path(like)
    names = [_name(like, path) for path, _ in paths]
    missing = [n for n in names if n not in record]
    unexpected = [n for n in record if n not in set(names)]
    if missing or unexpected:
        raise PytreeRecordError(
            f"The record does not fit the pytree: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}; pass like= a tree with the structure the record was made from."
        )
    leaves = []
    for name, (_, template) in zip(names, paths):
        array = record[name]
        want = np.asarray(template) if not _is_key(template) else None
        if want is not None and (tuple(want.shape), want.dtype.name) != (array.shape, array.dtype):
            raise PytreeRecordError(
                f"Record entry {name!r} is {array.dtype}{list(array.shape)} but the pytree "
                f"expects {want.dtype.name}{list(want.shape)}; load it into a tree of that shape."
            )
        leaves.append(_leaf(array, as_numpy))
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _name(tree: Any, path: tuple[Any, ...]) -> str:
    """The segments of ``path``, walking ``tree`` alongside to tell tuples from lists."""
    node: Any = tree
    segments = []
    for entry in path:
        if isinstance(entry, jax.tree_util.DictKey):
            segments.append(_dict_segment(entry.key, path))
            node = _child(node, entry.key)
        elif isinstance(entry, jax.tree_util.SequenceKey):
            bare_tuple = isinstance(node, tuple) and not hasattr(node, "_fields")
            segments.append(f"({entry.idx})" if bare_tuple else f"[{entry.idx}]")
            node = _child(node, entry.idx)
        elif isinstance(entry, jax.tree_util.GetAttrKey):
            segments.append(f".{entry.name}")
            node = None  # not followed: reading attributes may have effects (deprecations)
        elif isinstance(entry, jax.tree_util.FlattenedIndexKey):
            segments.append(f"{{{entry.key}}}")
            node = None
        else:
            raise PytreeRecordError(f"Key path entry {entry!r} has no name; flatten the tree first.")
    return _SEPARATOR.join(segments)


def _child(node: Any, key: Any) -> Any:
    try:
        return node[key]
    except (KeyError, IndexError, TypeError):
        return None


def _dict_segment(key: Any, path: tuple[Any, ...]) -> str:
    if isinstance(key, bool) or not isinstance(key, str | int):
        raise PytreeRecordError(
            f"Dict key {key!r} at {jax.tree_util.keystr(path)} is a {type(key).__name__}; "
            "only string and integer keys can be named. Use string keys."
        )
    if isinstance(key, int):
        return f"#{key}"
    if not key or _SEPARATOR in key or key.startswith(_RESERVED_START):
        raise PytreeRecordError(
            f"Dict key {key!r} at {jax.tree_util.keystr(path)} cannot be a name segment: keys "
            "must be non-empty, without '/', and not start with # [ ( . {; rename it."
        )
    return key


def _is_key(leaf: Any) -> bool:
    dtype = getattr(leaf, "dtype", None)
    return dtype is not None and jax.numpy.issubdtype(dtype, jax.dtypes.prng_key)


def _to_array(name: str, leaf: Any) -> Array:
    if _is_key(leaf):
        raise PytreeRecordError(
            f"Leaf {name!r} is a PRNG key, which is not a parameter; split it off first, "
            "e.g. nnx.split(model, nnx.Param, ...) and send only the Param state."
        )
    if not isinstance(leaf, jax.Array | np.ndarray | np.generic | int | float | complex | bool):
        raise PytreeRecordError(
            f"Leaf {name!r} is a {type(leaf).__name__}, not an array; make it a jax or numpy "
            "array or register its class as a pytree node."
        )
    value = np.asarray(leaf)
    if value.dtype.name == "bfloat16":  # ml_dtypes' bfloat16: carried as its raw bytes
        return Array("bfloat16", value.shape, np.ascontiguousarray(value).tobytes())
    return Array.from_numpy(value)


def _leaf(array: Array, as_numpy: bool) -> Any:
    if array.dtype == "bfloat16":
        value = np.frombuffer(bytes(array.data), dtype=jax.numpy.bfloat16).reshape(array.shape)
    else:
        value = array.numpy()
    if as_numpy or jax.dtypes.canonicalize_dtype(value.dtype) != value.dtype:
        return value
    return jax.numpy.asarray(value)


def _rebuild(leaves: dict[str, Any]) -> Any:
    """Nested dicts, lists and tuples from ``name -> leaf``."""
    if not leaves:
        return {}
    if list(leaves) == [""]:
        return leaves[""]
    groups: dict[str, dict[str, Any]] = {}
    for name, leaf in leaves.items():
        head, _, rest = name.partition(_SEPARATOR)
        groups.setdefault(head, {})[rest] = leaf
    heads = list(groups)
    kinds = {_kind(head) for head in heads}
    if len(kinds) != 1:
        raise PytreeRecordError(f"Names {heads[:4]} mix container kinds at one level; pass like=.")
    kind = kinds.pop()
    children = {head: _rebuild(sub) for head, sub in groups.items()}
    if kind in ("list", "tuple"):
        ordered = sorted(children.items(), key=lambda item: int(item[0][1:-1]))
        if [int(head[1:-1]) for head, _ in ordered] != list(range(len(ordered))):
            raise PytreeRecordError(f"Sequence indices {heads[:5]} have gaps; pass like=.")
        values = [child for _, child in ordered]
        return values if kind == "list" else tuple(values)
    if kind == "int":
        return {int(head[1:]): child for head, child in sorted(children.items(), key=lambda i: int(i[0][1:]))}
    if kind == "str":
        return dict(sorted(children.items()))
    raise PytreeRecordError(
        f"Names such as {heads[0]!r} come from a custom pytree node (an attribute or a keyless "
        "child); pass like= a tree of that structure to restore it."
    )


def _kind(segment: str) -> str:
    match = _INDEX.fullmatch(segment)
    if match is None:
        return "str"
    return ("int", "list", "tuple", "attr", "flat")[match.lastindex - 1 if match.lastindex else 0]
