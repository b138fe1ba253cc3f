"""Refused requests, logged one line each and at a bounded rate.

A peer that sends garbage in a loop must not be able to fill the SuperLink's log (or its
disk): every refusal is one line without a traceback, and a given (reason, peer) pair is
logged at most once per :data:`DEFAULT_WINDOW_S` seconds. The next line logged for that pair says
how many were suppressed in between, so nothing is hidden, only counted.

Examples
--------
>>> import logging
>>> clock = iter([0.0, 1.0, 2.0, 11.0]).__next__
>>> log = RefusalLog(logging.getLogger("doctest.refusals"), clock=clock)
>>> [log.refused("quota", "ipv4:10.0.0.1:5000", "too many streams") for _ in range(4)]
[True, False, False, True]
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["DEFAULT_WINDOW_S", "RefusalLog", "peer_of", "quiet_grpc_decoding_errors", "refusals"]

#: Seconds during which further refusals of one (reason, peer) are counted, not logged.
DEFAULT_WINDOW_S = 10.0
_MAX_KEYS = 4096  # peers are attacker-chosen: the table itself must stay bounded


class RefusalLog:
    """Log refusals as single lines, at most one per (reason, peer) per ``window`` seconds.

    Parameters
    ----------
    logger
        Where the lines go (at WARNING).
    window
        Seconds between two lines for the same (reason, peer).
    clock
        The time source (tests pass a fake one).
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        window: float = DEFAULT_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], tuple[float, int]] = {}  # key -> (logged at, suppressed)

    def refused(self, reason: str, peer: str, message: str) -> bool:
        """Record one refusal; log it (one line) unless one like it was logged recently.

        Parameters
        ----------
        reason
            A short fixed tag (``"quota"``, ``"deadline"``, ...): refusals are grouped by it.
        peer
            Who was refused (``context.peer()``, a node id).
        message
            What happened and what the peer should do; newlines are flattened.

        Returns
        -------
        bool
            True if a line was written.
        """
        now = self._clock()
        key = (reason, peer)
        with self._lock:
            logged_at, suppressed = self._last.get(key, (None, 0))
            if logged_at is not None and now - logged_at < self.window:
                self._last[key] = (logged_at, suppressed + 1)
                return False
            if len(self._last) >= _MAX_KEYS:
                self._forget_old(now)
            self._last[key] = (now, 0)
        line = " ".join(message.split())
        if suppressed:
            line += f" ({suppressed} more like this from {peer} in the last {self.window:.0f} s)"
        self.logger.warning("Refused %s from %s: %s", reason, peer, line)
        return True

    def _forget_old(self, now: float) -> None:
        stale = [k for k, (t, _) in self._last.items() if now - t >= self.window]
        for k in stale:
            del self._last[k]
        if len(self._last) >= _MAX_KEYS:  # all recent: drop the oldest half
            for k in sorted(self._last, key=lambda k: self._last[k][0])[: _MAX_KEYS // 2]:
                del self._last[k]


def peer_of(context: Any) -> str:
    """Who is on the other end of a gRPC call, for log lines (``ipv4:10.0.0.9:4000``)."""
    peer = getattr(context, "peer", None)
    return str(peer()) if callable(peer) else "an unknown peer"


#: The SuperLink's refusal log (``fedlab.superlink`` logger).
refusals = RefusalLog(logging.getLogger("fedlab.superlink"))


class _UndecodableRequests(logging.Filter):
    """Turns gRPC's traceback for a request that does not deserialise into a refusal line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith("Exception deserializing"):
            return True
        error = record.exc_info[1] if record.exc_info else None
        detail = f"{type(error).__name__}: {error}" if error is not None else record.getMessage()
        # gRPC does not say who sent it here; the client got INTERNAL.
        refusals.refused("undecodable request", "a client", detail)
        return False


_FILTER = _UndecodableRequests()


def quiet_grpc_decoding_errors() -> None:
    """Log requests that do not deserialise as rate-limited refusals, not as tracebacks.

    gRPC logs each such request with a full traceback at ERROR: a peer sending garbage in
    a loop would fill the log. Safe to call more than once.
    """
    for name in ("grpc._common", "grpc._server"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
