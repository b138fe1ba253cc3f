"""Coalesce many changes into few redraws: a dirty flag plus a minimum interval."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Throttle"]


class Throttle:
    """Decide when pending changes may be sent: at most once per ``interval`` seconds.

    Changes are marked with :meth:`touch`; :meth:`due` says whether they should be sent
    now, and :meth:`sent` records that they were. The clock is injectable so that tests
    count sends against simulated time instead of the wall clock.

    Examples
    --------
    >>> now = [0.0]
    >>> throttle = Throttle(0.1, clock=lambda: now[0])
    >>> throttle.touch(); throttle.due()
    True
    >>> throttle.sent(); throttle.touch(); throttle.due()
    False
    >>> now[0] = 0.1; throttle.due(), throttle.wait()
    (True, 0.0)
    """

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.dirty = False
        self._last: float | None = None

    def touch(self) -> None:
        """Note that something changed since the last send."""
        self.dirty = True

    def wait(self) -> float:
        """Seconds until a send is allowed again (0 if it is allowed now)."""
        if self._last is None:
            return 0.0
        return max(self._last + self.interval - self.clock(), 0.0)

    def due(self) -> bool:
        """True if there are changes and the interval since the last send has passed."""
        return self.dirty and self.wait() <= 0.0

    def sent(self) -> None:
        """Record a send now; pending changes are clean again."""
        self.dirty = False
        self._last = self.clock()
