"""How numbers, metrics, durations, rounds and errors read in text, wherever they appear.

The data side (:meth:`fedlab.history.History.summary`, the run's own error messages, the
``fedlab`` command) and the drawing side (the terminal consoles and the notebook dashboard
in :mod:`fedlab.dashboard`) share these functions, so a metric reads the same everywhere.
The module imports nothing but :mod:`fedlab.message`: data can use it without loading any
display.

Examples
--------
>>> from fedlab.format import format_metrics, format_seconds
>>> format_metrics([("train", {"loss": 0.25, "num-examples": 64})]), format_seconds(725.0)
('train loss=0.2500 num-examples=64', '12m 05s')
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fedlab.message import ErrorCode

__all__ = [
    "describe_error",
    "error_type",
    "format_metrics",
    "format_number",
    "format_privacy",
    "format_rounds",
    "format_seconds",
    "metric_rank",
    "pick_metrics",
]

#: How many metrics a one-line display shows before it gets too wide to read.
MAX_METRICS = 4


def format_number(value: Any) -> str:
    """Format a metric value: ints as ints, floats with 4 decimals, lists shortened.

    Very small or very large floats switch to 4 significant digits so they do not
    print as ``0.0000`` or as a wall of digits.

    Examples
    --------
    >>> format_number(72), format_number(0.912), format_number(1.5e-06), format_number(2.0e9)
    ('72', '0.9120', '1.5e-06', '2e+09')
    >>> format_number(float("nan")), format_number([0.5, 1, 2.25, 3])
    ('nan', '[0.5000, 1, 2.2500, …]')
    """
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value == 0.0 or 1e-3 <= abs(value) < 1e6:
            return f"{value:.4f}"
        return f"{value:.4g}"
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        items = [format_number(v) for v in value[:3]]
        return "[" + ", ".join(items) + (", …]" if len(value) > 3 else "]")
    return str(value)


def metric_rank(name: str) -> int:
    """How telling a metric is by its name, most telling first: the order displays show them.

    Losses (0) and accuracies (1) are what people watch; counters such as ``num-examples``
    (3) matter least; anything else (2) sits between.

    Examples
    --------
    >>> sorted(["num-examples", "f1", "accuracy", "val_loss"], key=metric_rank)
    ['val_loss', 'accuracy', 'f1', 'num-examples']
    """
    lowered = name.lower()
    if "loss" in lowered:
        return 0
    if "acc" in lowered:
        return 1
    if lowered.startswith("num"):
        return 3
    return 2


def pick_metrics(
    sections: Iterable[tuple[str, Mapping[str, Any]]], limit: int = MAX_METRICS
) -> list[tuple[str, list[str]]]:
    """Choose which metric keys to show: at most ``limit``, loss and accuracy first.

    Sections take turns, so each one (train, evaluate, server) shows its most telling
    metric before any shows its second. Empty sections are left out.

    Examples
    --------
    >>> pick_metrics([("train", {"num-examples": 10, "loss": 0.3, "acc": 0.9}),
    ...               ("server", {"accuracy": 0.8})], limit=3)
    [('train', ['loss', 'acc']), ('server', ['accuracy'])]
    """
    ranked = [(name, sorted(metrics, key=metric_rank)) for name, metrics in sections if metrics]
    chosen: dict[str, list[str]] = {name: [] for name, _ in ranked}
    count, depth = 0, 0
    while count < limit and any(depth < len(keys) for _, keys in ranked):
        for name, keys in ranked:
            if depth < len(keys) and count < limit:
                chosen[name].append(keys[depth])
                count += 1
        depth += 1
    # Keep each section's keys in preference order, as ranked.
    return [(name, [k for k in keys if k in chosen[name]]) for name, keys in ranked]


def format_metrics(
    sections: Iterable[tuple[str, Mapping[str, Any]]], limit: int = MAX_METRICS
) -> str:
    """Render sections of metrics as ``train loss=0.4312  server accuracy=0.9120``.

    Examples
    --------
    >>> format_metrics([("train", {"loss": 0.43123}), ("evaluate", {}),
    ...                 ("server", {"accuracy": 0.912})])
    'train loss=0.4312  server accuracy=0.9120'
    """
    sections = list(sections)
    lookup = dict(sections)
    parts = []
    for name, keys in pick_metrics(sections, limit):
        shown = " ".join(f"{key}={format_number(lookup[name][key])}" for key in keys)
        parts.append(f"{name} {shown}")
    return "  ".join(parts)


def format_privacy(epsilon: float, delta: float) -> str:
    """``ε=2.345 (δ=1e-05)``: the privacy a DP run has spent so far.

    Examples
    --------
    >>> format_privacy(2.34567, 1e-5), format_privacy(float("inf"), 1e-5)
    ('ε=2.346 (δ=1e-05)', 'ε=inf (δ=1e-05)')
    """
    shown = "inf" if math.isinf(epsilon) else f"{epsilon:.4g}"
    return f"ε={shown} (δ={delta:.3g})"


def format_seconds(seconds: float) -> str:
    """Render a duration: ``1.23s`` below ten seconds, ``12.3s`` below ten minutes, else ``12m 05s``.

    Examples
    --------
    >>> format_seconds(1.234), format_seconds(12.34), format_seconds(725.0)
    ('1.23s', '12.3s', '12m 05s')
    """
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 600:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m {rest:02d}s"


def describe_error(code: int | None, reason: str | None) -> str:
    """One line about a failed reply: the first line of its reason, else its code's name.

    Examples
    --------
    >>> describe_error(2, "ValueError: bad shape\\nTraceback (most recent call last): ...")
    'ValueError: bad shape'
    >>> describe_error(7, ""), describe_error(99, None)
    ('TIMEOUT', 'error code 99')
    """
    for line in (reason or "").splitlines():
        if line.strip():
            return line.strip()
    try:
        return ErrorCode(code).name if code is not None else "unknown error"
    except ValueError:
        return f"error code {code}"


def error_type(code: int | None, reason: str | None) -> str:
    """What kind of failure a reply carries: the exception's class, else its code's name.

    A client that raised gets the class of its exception (the text before the first line's
    colon, when that is a dotted name); a timeout, a crash or a refused reply gets the name
    of its :class:`~fedlab.message.ErrorCode`.

    Examples
    --------
    >>> error_type(2, "ValueError: bad shape\\nTraceback (most recent call last): ...")
    'ValueError'
    >>> error_type(7, "no reply within 5 s"), error_type(99, None)
    ('TIMEOUT', 'error code 99')
    """
    if code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION:
        head = describe_error(code, reason).split(":", 1)[0].strip()
        if head and all(part.isidentifier() for part in head.split(".")):
            return head
    try:
        return ErrorCode(code).name if code is not None else "UNKNOWN"
    except ValueError:
        return f"error code {code}"


def format_rounds(numbers: Iterable[int]) -> str:
    """Name rounds: ``round 2``, ``rounds 2, 3``; three or more in a row as a range.

    Examples
    --------
    >>> format_rounds([2]), format_rounds([3, 2]), format_rounds([1, 2, 3, 4, 7])
    ('round 2', 'rounds 2, 3', 'rounds 1-4, 7')
    """
    ordered = sorted(set(numbers))
    runs: list[list[int]] = []
    for number in ordered:
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{run[0]}-{run[-1]}")
        else:
            parts.extend(str(n) for n in run)
    return ("round " if len(ordered) == 1 else "rounds ") + ", ".join(parts)
