"""fedlab.validate: one rule for integer arguments, raised as the caller's own error."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fedlab.errors import DatasetError, StrategyError
from fedlab.validate import check_int


@pytest.mark.parametrize("value", [0, 7, np.int64(7), np.uint8(7)])
def test_check_int_returns_python_and_numpy_integers_as_python_ints(value: Any) -> None:
    checked = check_int("count", value, StrategyError)

    assert checked == int(value) and type(checked) is int


@pytest.mark.parametrize(
    ("value", "minimum", "message"),
    [
        (True, 0, "count must be a non-negative int, got True."),
        (-1, 0, "count must be a non-negative int, got -1."),
        (2.0, 0, "count must be a non-negative int, got 2.0."),
        ("3", 0, "count must be a non-negative int, got '3'."),
        (None, 1, "count must be an int >= 1, got None."),
        (0, 1, "count must be an int >= 1, got 0."),
        (np.int32(2), 3, f"count must be an int >= 3, got {np.int32(2)!r}."),
    ],
)
def test_check_int_refuses_with_the_callers_error_naming_the_value_and_the_rule(
    value: Any, minimum: int, message: str
) -> None:
    with pytest.raises(DatasetError) as info:
        check_int("count", value, DatasetError, minimum=minimum)

    assert str(info.value) == message
