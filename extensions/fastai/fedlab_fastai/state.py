"""A fastai Learner's model state as an :class:`~fedlab.ArrayRecord`, and back."""

from __future__ import annotations

import torch

from fedlab import ArrayRecord
from fedlab_fastai._fastai import Learner
from fedlab_fastai.errors import StateMismatchError

__all__ = ["get_state", "set_state"]


def get_state(learn: Learner | torch.nn.Module) -> ArrayRecord:
    """The model's ``state_dict()`` as an ArrayRecord: same names, order, dtypes and bytes.

    Parameters
    ----------
    learn
        A fastai Learner (its ``model`` is read) or a plain ``torch.nn.Module``.

    Returns
    -------
    ArrayRecord
        One entry per ``state_dict`` key (buffers included), copied to CPU.
    """
    model = learn.model if isinstance(learn, Learner) else learn
    return ArrayRecord.from_torch(model.state_dict())


def set_state(learn: Learner | torch.nn.Module, arrays: ArrayRecord) -> Learner | torch.nn.Module:
    """Load ``arrays`` into the model in place (through ``to_torch_state_dict``) and return ``learn``.

    Parameters
    ----------
    learn
        A fastai Learner or a plain ``torch.nn.Module``.
    arrays
        A record made by :func:`get_state` (or aggregated from such records).

    Returns
    -------
    Learner or torch.nn.Module
        ``learn`` itself, its model holding exactly the record's values.

    Raises
    ------
    StateMismatchError
        If a name is missing or extra, or a shape differs; the message names them.
    """
    model = learn.model if isinstance(learn, Learner) else learn
    expected = model.state_dict()
    missing = [name for name in expected if name not in arrays]
    extra = [name for name in arrays if name not in expected]
    if missing or extra:
        raise StateMismatchError(
            f"The record does not fit {type(model).__name__}: missing {missing}, unexpected {extra}. "
            "Build the Learner's model with the same architecture that produced the record."
        )
    for name, tensor in expected.items():
        if tuple(tensor.shape) != arrays[name].shape:
            raise StateMismatchError(
                f"{name!r} has shape {arrays[name].shape} in the record but {tuple(tensor.shape)} in "
                f"{type(model).__name__}; build the model with the same layer sizes."
            )
    with torch.no_grad():
        model.load_state_dict(arrays.to_torch_state_dict(), strict=True)
    return learn
