"""The errors fedlab-sklearn raises, each a :class:`fedlab.errors.FedlabError`."""

from __future__ import annotations

from fedlab.errors import ConfigurationError

__all__ = ["UnsupportedEstimatorError"]


class UnsupportedEstimatorError(ConfigurationError):
    """The estimator is not one fedlab-sklearn knows how to federate, or its parameters
    do not match the record it was given."""
