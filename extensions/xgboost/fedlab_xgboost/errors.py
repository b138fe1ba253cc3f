"""Errors of fedlab-xgboost."""

from __future__ import annotations

from fedlab.errors import FedlabError

__all__ = ["XGBoostModelError"]


class XGBoostModelError(FedlabError):
    """Model bytes that cannot be loaded, merged or continued; the message says why."""
