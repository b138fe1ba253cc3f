"""Comparisons: several federations on the same clients, side by side.

:func:`compare` runs federations (or the variants of one) one after another and shows
them in one live dashboard; it returns a :class:`Comparison`, one Result per federation
and a :class:`ComparedHistory` whose ``to_pandas()`` has a ``federation`` column.
:func:`plot_compare` draws a comparison's curves into one matplotlib figure.

The modules, each one concept:

``comparing``
    :func:`compare` and what it returns.
``history``
    :class:`ComparedHistory`: the Histories of a comparison as one table.
``plot``
    :func:`plot_compare`, the static figure.
"""

from __future__ import annotations

from fedlab.comparison.comparing import Comparison, compare
from fedlab.comparison.history import ComparedHistory
from fedlab.comparison.plot import plot_compare

__all__ = ["ComparedHistory", "Comparison", "compare", "plot_compare"]
