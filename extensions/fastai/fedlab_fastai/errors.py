"""The errors fedlab-fastai raises, each a :class:`fedlab.errors.FedlabError`."""

from __future__ import annotations

from fedlab.errors import ConfigurationError, RecordError

__all__ = ["FastaiSetupError", "StateMismatchError"]


class StateMismatchError(RecordError):
    """A record's names or shapes do not match the Learner's model it is loaded into."""


class FastaiSetupError(ConfigurationError):
    """A Learner builder or a partition loader returned something the ClientApp cannot train."""
