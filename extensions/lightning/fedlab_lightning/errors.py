"""The errors fedlab-lightning raises, each a :class:`fedlab.errors.FedlabError`."""

from __future__ import annotations

from fedlab.errors import ConfigurationError, RecordError

__all__ = ["LightningSetupError", "StateMismatchError"]


class StateMismatchError(RecordError):
    """A record's names or shapes do not match the LightningModule it is loaded into."""


class LightningSetupError(ConfigurationError):
    """A model builder or a partition loader returned something the ClientApp cannot train."""
