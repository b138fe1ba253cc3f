"""A Keras variable's value as a numpy array."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["variable_numpy"]


def variable_numpy(variable: Any) -> npt.NDArray[Any]:
    """A numpy copy of ``variable``'s current value, in its own dtype and shape."""
    # Keras's own numpy(), not np.array(variable): numpy 2 warns on a TensorFlow variable.
    return np.array(variable.numpy(), copy=True)
