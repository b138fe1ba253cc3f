"""The errors fedlab-mlx raises, each a :class:`fedlab.errors.FedlabError`."""

from __future__ import annotations

from fedlab.errors import RecordError

__all__ = ["MlxRecordError"]


class MlxRecordError(RecordError):
    """Parameters cannot become an ArrayRecord (a key or leaf fedlab cannot carry), or a record
    does not fit the model it should be loaded into (names, shapes or dtypes differ)."""
