"""How much one SuperNode may upload: streams at once, bytes waiting, size of one object.

Nodes are other organisations' machines; one of them, broken or hostile, must not be able
to fill the SuperLink's memory, disk or worker threads. :class:`UploadQuotas` holds the
bookkeeping behind these limits (all in :class:`UploadLimits`):

- **Streams**: at most ``max_streams`` PushObject streams at once in all (half the worker
  threads by default, so that registering, heartbeats and polls always find a thread),
  and at most ``streams_per_node`` for one node. Extra streams are refused at once, before
  a byte is read: UNAVAILABLE when the SuperLink is full (a node retries after a backoff),
  RESOURCE_EXHAUSTED when the node itself has too many open.
- **Bytes waiting**: uploads a node stored that no reply refers to yet (a reply's content
  is uploaded first, then the reply points at it). A node may always have one such
  object; beyond it, the sizes of its waiting uploads (and of those in flight) may add up
  to at most ``pending_bytes_per_node``. An upload stops waiting once an accepted reply
  refers to it, or once garbage collection deleted it.
- **One object**: the cap for a run is ``max(reply_floor, reply_factor × the largest
  instruction content of that run)``, that is by default four times the model the
  ServerApp sent, and never less than 64 MiB; the run is any run the node holds an
  unanswered instruction of (the largest cap wins), and the SuperLink's global
  ``max_object_size`` still applies on top. A strategy that sends small instructions
  and expects replies larger than 64 MiB (nodes that build the model themselves) needs a
  larger ``reply_floor``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fedlab.deploy.superlink._deadlines import DEFAULT_IDLE_S

__all__ = ["UploadLimits", "UploadQuotas", "Verdict"]


@dataclass(frozen=True)
class UploadLimits:
    """The limits on what SuperNodes upload (see the module docstring for each rule).

    Attributes
    ----------
    max_streams
        PushObject streams open at once over all nodes; None means half the worker threads.
    streams_per_node
        PushObject streams one node may have open at once.
    pending_bytes_per_node
        Bytes of a node's uploads that no reply refers to yet (beyond its first one).
    reply_floor
        The smallest per-run cap on one uploaded object, in bytes.
    reply_factor
        The per-run cap is this times the run's largest instruction content.
    idle_s
        Seconds an object stream (push or pull) may make no progress before it is ended
        with DEADLINE_EXCEEDED.
    """

    max_streams: int | None = None
    streams_per_node: int = 4
    pending_bytes_per_node: int = 2 * 2**30
    reply_floor: int = 64 * 2**20
    reply_factor: int = 4
    idle_s: float = DEFAULT_IDLE_S

    def run_cap(self, largest_instruction: int) -> int:
        """The cap on one object a node uploads for a run whose largest instruction is given."""
        return max(self.reply_floor, self.reply_factor * largest_instruction)


@dataclass(frozen=True)
class Verdict:
    """The answer to an upload request: ``reason`` is empty if it may go ahead."""

    reason: str = ""

    def __bool__(self) -> bool:
        return not self.reason


class UploadQuotas:
    """Counts streams and waiting bytes per node; thread-safe.

    Parameters
    ----------
    limits
        The limits to hold nodes to.
    max_streams
        The global stream limit to use when ``limits.max_streams`` is None.
    is_stored
        Tells whether an object is still stored (waiting uploads that garbage collection
        deleted stop counting).
    """

    def __init__(
        self, limits: UploadLimits, *, max_streams: int, is_stored: Callable[[str], bool]
    ) -> None:
        self.limits = limits
        self.max_streams = limits.max_streams if limits.max_streams is not None else max_streams
        self._is_stored = is_stored
        self._lock = threading.Lock()
        self._open = 0
        self._streams: dict[int, int] = {}
        self._in_flight: dict[int, dict[Any, int]] = {}  # node -> {upload token: bytes}
        self._waiting: dict[int, dict[str, int]] = {}  # node -> {digest: bytes}

    def open_stream(self) -> Verdict:
        """Take one of the global stream slots (release with :meth:`close_stream`)."""
        with self._lock:
            if self._open >= self.max_streams:
                return Verdict(
                    f"the SuperLink is receiving {self._open} uploads already, its limit; "
                    "retry in a few seconds"
                )
            self._open += 1
            return Verdict()

    def close_stream(self) -> None:
        """Give back a slot taken by :meth:`open_stream`."""
        with self._lock:
            self._open -= 1

    def begin(self, node_id: int, token: object, size: int) -> Verdict:
        """Admit node ``node_id``'s upload of ``size`` bytes (``token`` names it until :meth:`end`)."""
        with self._lock:
            streams = self._streams.get(node_id, 0)
            if streams >= self.limits.streams_per_node:
                return Verdict(
                    f"node {node_id} already has {streams} uploads open, the most allowed; "
                    "send objects one after another"
                )
            waiting = self._prune(node_id)
            in_flight = self._in_flight.setdefault(node_id, {})
            held = sum(waiting.values()) + sum(in_flight.values())
            if (waiting or in_flight) and held + size > self.limits.pending_bytes_per_node:
                return Verdict(
                    f"node {node_id} holds {held} bytes of uploads that no reply refers to yet; "
                    f"another {size} would pass its budget of {self.limits.pending_bytes_per_node}. "
                    "Push the replies that refer to them first"
                )
            self._streams[node_id] = streams + 1
            in_flight[token] = size
            return Verdict()

    def end(self, node_id: int, token: object, digest: str | None) -> None:
        """End an upload :meth:`begin` admitted; ``digest`` if it was stored, else None."""
        with self._lock:
            self._streams[node_id] -= 1
            if not self._streams[node_id]:
                del self._streams[node_id]
            size = self._in_flight.get(node_id, {}).pop(token, 0)
            if not self._in_flight.get(node_id, True):
                del self._in_flight[node_id]
            if digest is not None:
                self._waiting.setdefault(node_id, {})[digest] = size

    def claim(self, node_id: int, digest: str) -> None:
        """An accepted reply of ``node_id`` refers to ``digest``: it stops counting as waiting."""
        with self._lock:
            waiting = self._waiting.get(node_id)
            if waiting is not None:
                waiting.pop(digest, None)
                if not waiting:
                    del self._waiting[node_id]

    def waiting_bytes(self, node_id: int) -> int:
        """Bytes of ``node_id``'s uploads that no reply refers to yet."""
        with self._lock:
            return sum(self._prune(node_id).values())

    def _prune(self, node_id: int) -> dict[str, int]:
        waiting = self._waiting.get(node_id, {})
        for digest in [d for d in waiting if not self._is_stored(d)]:
            del waiting[digest]
        return waiting
