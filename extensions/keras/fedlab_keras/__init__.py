"""fedlab-keras: federate the Keras 3 models you already have.

Weights travel as an :class:`~fedlab.ArrayRecord` named after the model's variables
(``sequential/dense/kernel``, ...), bit-exact both ways (:func:`get_weights`,
:func:`set_weights`); :func:`keras_client_app` builds a ClientApp that trains and
evaluates a compiled model on a numpy or ``tf.data`` partition and is safe on the threads
backend. Importing this package keeps TensorFlow's C++ start-up notices quiet unless
``TF_CPP_MIN_LOG_LEVEL`` is already set; import it before ``tensorflow`` or ``keras``.
"""

from __future__ import annotations

from fedlab_keras import _quiet  # noqa: F401  (before keras: TensorFlow reads its log level once)
from fedlab_keras.client import keras_client_app
from fedlab_keras.errors import KerasWeightsError
from fedlab_keras.weights import get_weights, set_weights, weight_names

__all__ = ["KerasWeightsError", "get_weights", "keras_client_app", "set_weights", "weight_names"]
