"""Checking arguments: one rule per kind of value, and an error that names it and the fix.

Every part of fedlab refuses a bad argument with its own error class (a strategy with a
:class:`~fedlab.errors.StrategyError`, a partitioner with a
:class:`~fedlab.errors.DatasetError`, ...), so the checks here take the class to raise.
A ``bool`` is never accepted where a number is meant, although Python counts ``True`` as
the int 1: ``min_train_nodes=True`` is a mistake, not a request for one node.

Examples
--------
>>> from fedlab.errors import StrategyError
>>> from fedlab.validate import check_int
>>> check_int("num_rounds", 3, StrategyError)
3
>>> check_int("buffer_size", 0, StrategyError, minimum=1)
Traceback (most recent call last):
    ...
fedlab.errors.StrategyError: buffer_size must be an int >= 1, got 0.
"""

from __future__ import annotations

import numpy as np

from fedlab.errors import FedlabError

__all__ = ["check_int"]


def check_int(name: str, value: object, error: type[FedlabError], minimum: int = 0) -> int:
    """Return ``value`` as an int if it is an integer of at least ``minimum``, else raise.

    Python and numpy integers are accepted; a bool, a float (even ``2.0``) or a string is
    not. The error, of class ``error``, names the argument and the value it got.

    Parameters
    ----------
    name
        The argument's name, as the caller wrote it.
    value
        What the caller passed.
    error
        The error class to raise, the one of the part being configured.
    minimum
        The least value accepted.

    Examples
    --------
    >>> import numpy as np
    >>> from fedlab.errors import DatasetError
    >>> check_int("seed", np.int64(7), DatasetError)
    7
    >>> check_int("num_partitions", True, DatasetError, minimum=1)
    Traceback (most recent call last):
        ...
    fedlab.errors.DatasetError: num_partitions must be an int >= 1, got True.
    >>> check_int("min_train_nodes", -1, DatasetError)
    Traceback (most recent call last):
        ...
    fedlab.errors.DatasetError: min_train_nodes must be a non-negative int, got -1.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        wanted = "a non-negative int" if minimum == 0 else f"an int >= {minimum}"
        raise error(f"{name} must be {wanted}, got {value!r}.")
    return int(value)
