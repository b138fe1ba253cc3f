"""The errors fedlab-keras raises, each a :class:`fedlab.errors.FedlabError`."""

from __future__ import annotations

from fedlab.errors import ConfigurationError

__all__ = ["KerasWeightsError"]


class KerasWeightsError(ConfigurationError):
    """A record's arrays do not fit the Keras model they are loaded into (names, shapes or
    dtypes differ), or the model cannot be federated as built."""
