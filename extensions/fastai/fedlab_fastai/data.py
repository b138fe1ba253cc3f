"""fastai ``DataLoaders`` from numpy arrays, shuffled from a seed."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from fedlab_fastai._fastai import DataLoaders
from fedlab_fastai.errors import FastaiSetupError

__all__ = ["array_dataloaders"]


def array_dataloaders(
    x_train: npt.ArrayLike,
    y_train: npt.ArrayLike,
    x_valid: npt.ArrayLike,
    y_valid: npt.ArrayLike,
    *,
    batch_size: int = 32,
) -> DataLoaders:
    """CPU fastai DataLoaders over in-memory rows: features as float32, labels as int64.

    The training loader shuffles (seeded by :func:`fastai.torch_core.set_seed`, which the
    ClientApp calls before loading), the validation loader keeps its order.

    Parameters
    ----------
    x_train, y_train
        Training features (rows × columns) and integer class labels.
    x_valid, y_valid
        Validation rows, used by ``learn.validate()`` and the per-epoch metrics.
    batch_size
        Rows per batch.

    Returns
    -------
    DataLoaders
        ``dls.train`` and ``dls.valid`` on the CPU.

    Raises
    ------
    FastaiSetupError
        If features and labels differ in length or ``batch_size`` is below 1.
    """
    if batch_size < 1:
        raise FastaiSetupError(f"batch_size={batch_size} must be at least 1, e.g. batch_size=32.")
    sets = []
    for name, x, y in (("train", x_train, y_train), ("valid", x_valid, y_valid)):
        xs, ys = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)
        if len(xs) != len(ys):
            raise FastaiSetupError(
                f"x_{name} has {len(xs)} rows but y_{name} has {len(ys)} labels; pass one label per row."
            )
        sets.append(list(zip(torch.from_numpy(xs), torch.from_numpy(ys))))
    return DataLoaders.from_dsets(sets[0], sets[1], bs=batch_size, device=torch.device("cpu"))
