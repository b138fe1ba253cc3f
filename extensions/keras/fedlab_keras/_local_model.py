"""One worker's model, handed out in the state a freshly built model would be in."""

from __future__ import annotations

from typing import Any

import keras

from fedlab_keras._numpy import variable_numpy
from fedlab_keras.errors import KerasWeightsError

__all__ = ["LocalModel"]


class LocalModel:
    """A compiled model kept by one worker, with its optimizer's initial slots remembered.

    Building and compiling a model, and tracing its training step, costs far more than a
    round of local training on a small partition; so each worker builds one and reuses it.
    :meth:`fresh` puts the optimizer back to its initial state (step count, momenta,
    learning rate) so that no call sees what an earlier client's training left behind.
    """

    def __init__(self, model: keras.Model) -> None:
        optimizer = getattr(model, "optimizer", None)
        if optimizer is None or not model.compiled:
            raise KerasWeightsError(
                f"make_model() returned model {model.name!r} uncompiled; call "
                "model.compile(optimizer=..., loss=..., metrics=[...]) before returning it."
            )
        if not model.weights:
            raise KerasWeightsError(
                f"make_model() returned model {model.name!r} without weights; give it an input "
                "shape (keras.Input(shape=...) as its first layer) or call model.build(input_shape)."
            )
        optimizer.build(model.trainable_variables)
        self.model = model
        self._initial: list[Any] = [variable_numpy(v) for v in optimizer.variables]

    def fresh(self) -> keras.Model:
        """The model with its optimizer reset to its initial state (weights are left as they are)."""
        for variable, value in zip(self.model.optimizer.variables, self._initial, strict=True):
            variable.assign(value)
        return self.model
