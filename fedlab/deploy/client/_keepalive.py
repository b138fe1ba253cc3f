"""A driver's sign of life: one cheap call to the SuperLink while the driver is busy.

A SuperLink fails an attached run whose driver made no ServerAppIo call for its
``--driver-grace`` (the process that called ``deploy()`` died). A driver that is alive but
busy (a long server-side evaluation between rounds) must not look dead, so a grid keeps a
thread that makes one call every ``interval`` seconds until the grid is closed. A failed
call is only logged: the run's own calls report a SuperLink that is really gone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["KeepAlive"]

_log = logging.getLogger("fedlab.deploy")


class KeepAlive:
    """Calls ``ping()`` every ``interval`` seconds on a daemon thread until :meth:`close`."""

    def __init__(self, ping: Callable[[], object], interval: float) -> None:
        self._ping = ping
        self._interval = interval
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fedlab-keepalive", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop calling (returns at once; a call in flight ends on its own)."""
        self._closed.set()

    def _loop(self) -> None:
        while not self._closed.wait(self._interval):
            try:
                self._ping()
            except Exception as exc:  # the grid's own calls report a SuperLink that is gone
                _log.debug("Keep-alive call to the SuperLink failed: %s", exc)
