"""A Keras model's weights as a named :class:`~fedlab.ArrayRecord`, and back.

Each array is named after its variable's path in the model (``sequential/dense/kernel``,
``sequential/batch_normalization/moving_mean``), in the order of ``model.weights``, so
non-trainable state such as batch-norm statistics travels too (optimizer slots and
dropout seeds do not). Arrays keep the variable's dtype and shape: loading a record and
reading it back gives the very same bytes.

Keras numbers the names it invents per session (``dense``, ``dense_1``, ... and again
``dense_2`` for the next model built), so the same builder gives different paths in
different processes, threads or calls. The names used here are therefore *canonical*:
at every level of the path, layers are renumbered in model order after their trailing
``_<n>`` is dropped, which gives the names a fresh session shows. Two models made by one
builder always agree, wherever and whenever they were built.
"""

from __future__ import annotations

import re
from typing import Any

import keras
import numpy as np

from fedlab import Array, ArrayRecord
from fedlab_keras._numpy import variable_numpy
from fedlab_keras.errors import KerasWeightsError

__all__ = ["get_weights", "set_weights", "weight_names"]

_NUMBERED = re.compile(r"(.*?)_\d+")


def _base(segment: str) -> str:
    match = _NUMBERED.fullmatch(segment)
    return match.group(1) if match else segment


def _canonical(paths: list[str]) -> list[str]:
    """Renumber every non-leaf path segment per parent, in order of first appearance."""
    renamed: dict[tuple[str, ...], str] = {}  # original prefix -> canonical segment
    taken: dict[tuple[str, ...], dict[str, int]] = {}  # canonical parent -> base -> count
    names = []
    for path in paths:
        parts = path.split("/")
        canonical: list[str] = []
        for depth, segment in enumerate(parts[:-1]):
            key = tuple(parts[: depth + 1])
            if key not in renamed:
                counts = taken.setdefault(tuple(canonical), {})
                base = _base(segment)
                seen = counts.get(base, 0)
                counts[base] = seen + 1
                renamed[key] = base if seen == 0 else f"{base}_{seen}"
            canonical.append(renamed[key])
        names.append("/".join([*canonical, parts[-1]]))
    return names


def _variables(model: keras.Model) -> list[Any]:
    variables = list(model.weights)
    if not variables:
        raise KerasWeightsError(
            f"Model {model.name!r} has no weights yet; give it an input shape "
            "(keras.Input(shape=...) as its first layer) or call model.build(input_shape)."
        )
    return variables


def weight_names(model: keras.Model) -> list[str]:
    """The canonical names :func:`get_weights` gives ``model``'s variables, in order.

    Raises
    ------
    KerasWeightsError
        If the model is not built yet, or two variables would get the same name.

    Examples
    --------
    >>> import keras
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2), keras.layers.Dense(1)])
    >>> weight_names(model)
    ['sequential/dense/kernel', 'sequential/dense/bias', 'sequential/dense_1/kernel', 'sequential/dense_1/bias']
    """
    paths = [str(v.path) for v in _variables(model)]
    names = _canonical(paths)
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise KerasWeightsError(
            f"Model {model.name!r} has several variables named {twice}; give its layers and "
            "weights distinct names (layer name=..., add_weight(name=...))."
        )
    return names


def get_weights(model: keras.Model) -> ArrayRecord:
    """A copy of every weight of a built model, named by :func:`weight_names`.

    Examples
    --------
    >>> import keras
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="out")])
    >>> {name: (a.dtype, a.shape) for name, a in get_weights(model).items()}
    {'sequential/out/kernel': ('float32', (3, 2)), 'sequential/out/bias': ('float32', (2,))}
    """
    names = weight_names(model)
    arrays = [Array.from_numpy(variable_numpy(v)) for v in model.weights]
    return ArrayRecord(dict(zip(names, arrays, strict=True)))


def set_weights(model: keras.Model, record: ArrayRecord) -> keras.Model:
    """Load ``record`` into ``model`` in place, by name, and return the model.

    Every variable must have an array of its exact name, shape and dtype: nothing is cast,
    reshaped or skipped, so a model that got another model's record computes the same.

    Raises
    ------
    KerasWeightsError
        If names are missing or unexpected, or a shape or dtype differs; the message lists them.
    """
    names = weight_names(model)
    missing = [n for n in names if n not in record]
    unexpected = [n for n in record if n not in set(names)]
    if missing or unexpected:
        raise KerasWeightsError(
            f"The record does not fit model {model.name!r}: missing {missing}, unexpected "
            f"{unexpected}. Build the model with the same builder that made the record "
            "(fedlab_keras.weight_names(model) lists what it expects)."
        )
    values = []
    for name, variable in zip(names, model.weights, strict=True):
        value = record[name].numpy()
        expected = (np.dtype(variable.dtype).name, tuple(variable.shape))
        if (value.dtype.name, value.shape) != expected:
            raise KerasWeightsError(
                f"{name!r} is {value.dtype.name}{list(value.shape)} in the record but "
                f"{expected[0]}{list(expected[1])} in model {model.name!r}; send arrays of the "
                "model's own dtype and shape."
            )
        values.append(value)
    for variable, value in zip(model.weights, values, strict=True):
        variable.assign(value)
    return model
