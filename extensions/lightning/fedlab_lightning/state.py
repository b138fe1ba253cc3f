"""A LightningModule's state as an :class:`~fedlab.ArrayRecord`, and back."""

from __future__ import annotations

import torch
from lightning.pytorch import LightningModule

from fedlab import ArrayRecord
from fedlab_lightning.errors import StateMismatchError

__all__ = ["get_state", "set_state"]


def get_state(module: LightningModule) -> ArrayRecord:
    """The module's ``state_dict()`` as an ArrayRecord: same names, order, dtypes and bytes.

    Buffers (e.g. batch-norm running statistics) travel with the parameters.

    Parameters
    ----------
    module
        Any LightningModule (or plain ``torch.nn.Module``).

    Returns
    -------
    ArrayRecord
        One entry per ``state_dict`` key, copied to CPU.
    """
    return ArrayRecord.from_torch(module.state_dict())


def set_state(module: LightningModule, arrays: ArrayRecord) -> LightningModule:
    """Load ``arrays`` into ``module`` in place (through ``to_torch_state_dict``) and return it.

    Parameters
    ----------
    module
        The module to overwrite, typically freshly built by your model builder.
    arrays
        A record made by :func:`get_state` (or aggregated from such records).

    Returns
    -------
    LightningModule
        ``module`` itself, holding exactly the record's values.

    Raises
    ------
    StateMismatchError
        If a name is missing or extra, or a shape differs; the message names them.
    """
    expected = module.state_dict()
    missing = [name for name in expected if name not in arrays]
    extra = [name for name in arrays if name not in expected]
    if missing or extra:
        raise StateMismatchError(
            f"The record does not fit {type(module).__name__}: missing {missing}, unexpected {extra}. "
            "Build the module with the same architecture that produced the record."
        )
    for name, tensor in expected.items():
        if tuple(tensor.shape) != arrays[name].shape:
            raise StateMismatchError(
                f"{name!r} has shape {arrays[name].shape} in the record but {tuple(tensor.shape)} in "
                f"{type(module).__name__}; build the module with the same layer sizes."
            )
    with torch.no_grad():
        module.load_state_dict(arrays.to_torch_state_dict(), strict=True)
    return module
