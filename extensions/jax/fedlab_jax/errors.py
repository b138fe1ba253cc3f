"""The errors fedlab-jax raises, each a :class:`fedlab.errors.FedlabError`."""

from __future__ import annotations

from fedlab.errors import RecordError

__all__ = ["PytreeRecordError"]


class PytreeRecordError(RecordError):
    """A pytree cannot become an ArrayRecord (a leaf or key fedlab cannot carry), or a record
    does not fit the pytree it should be loaded into (names, shapes or dtypes differ)."""
