"""The errors fedlab-transformers raises, each a :class:`fedlab.errors.FedlabError`."""

from __future__ import annotations

from fedlab.errors import RecordError

__all__ = ["AdapterMismatchError"]


class AdapterMismatchError(RecordError):
    """A record's adapter arrays do not match the model's adapter (names, shapes or dtypes)."""
