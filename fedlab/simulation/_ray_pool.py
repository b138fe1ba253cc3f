"""The Ray actors of one :meth:`RayBackend.start <fedlab.simulation.RayBackend.start>`.

An :class:`ActorPool` makes the actors, waits until each is up, and lends each to one
call at a time. An actor that dies during a call (its process crashed, or
:meth:`ActorPool.cancel` killed it because the grid gave up on the call) is replaced by a
fresh one, which the next call waits for. Large ArrayRecords a round sends to many nodes are put into Ray's
object store once and shared by reference (:meth:`ActorPool.split`); the actor body
that receives them is :mod:`fedlab.simulation._ray_actor`.
"""

from __future__ import annotations

import queue
import threading
from collections import OrderedDict
from collections.abc import Collection
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, cast

from fedlab.errors import SimulationError
from fedlab.message import Message
from fedlab.records import ArrayRecord, RecordDict
from fedlab.wire.codec import encode_message, encode_record_dict

__all__ = ["ActorPool"]

#: How many shared ArrayRecords stay in the object store (a round's train and evaluate
#: phases send the same global arrays).
SHARED_CACHE_SIZE = 2
#: Seconds to wait for the actors to start before reporting that the cluster cannot
#: place them.
START_TIMEOUT = 300.0


@dataclass
class _Actor:
    handle: Any
    pid: int | None = None


class ActorPool:
    """The actors of one :meth:`RayBackend.start`, each lent to one call at a time.

    ArrayRecords of at least ``share_min_bytes`` travel through the object store.
    """

    def __init__(
        self, ray: Any, actor_class: Any, app_ref: Any, size: int, *, share_min_bytes: int
    ) -> None:
        self.ray, self.size = ray, size
        self._share_min_bytes = share_min_bytes
        self._actor_class, self._app_ref = actor_class, app_ref
        self._idle: queue.SimpleQueue[_Actor] = queue.SimpleQueue()
        self._all = [_Actor(actor_class.remote(app_ref)) for _ in range(size)]
        # Global arrays put into the object store: key -> (the record, kept so that the
        # ids in the key stay its arrays', and its object ref).
        self._shared: OrderedDict[tuple[object, ...], tuple[ArrayRecord, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._stopped = False
        self._calls: dict[str, _Actor] = {}  # message id -> the actor running it; under _lock
        self._cancelled: set[str] = set()  # under _lock
        pids = [actor.handle.pid.remote() for actor in self._all]
        try:
            ready, _ = ray.wait(pids, num_returns=len(pids), timeout=START_TIMEOUT)
            if len(ready) < len(pids):
                raise SimulationError(
                    f"{len(pids) - len(ready)} of {len(pids)} Ray actors did not start within "
                    f"{START_TIMEOUT:g} s; the cluster has {ray.cluster_resources()} and each "
                    "actor needs what num_cpus/num_gpus ask: lower them or max_workers."
                )
            for actor, pid in zip(self._all, ray.get(pids), strict=True):
                actor.pid = pid
        except Exception as err:
            self.stop()
            if isinstance(err, SimulationError):
                raise
            raise SimulationError(
                f"Ray could not start the client actors ({type(err).__name__}: {err}). Every "
                "machine of the cluster needs fedlab (pip install fedlab-sdk) and the packages "
                "the ClientApp imports, for the same Python version."
            ) from err
        for actor in self._all:
            self._idle.put(actor)

    def split(self, message: Message) -> tuple[bytes, tuple[str, ...], list[Any]]:
        """Encode ``message`` with its large ArrayRecords taken out into object-store refs.

        Returns the frame, the content's keys in order (empty if nothing was taken out)
        and, for each key, the ref of the record taken out or nothing for a record that
        stays in the frame.
        """
        if message.has_error():
            return encode_message(message), (), []
        content = message.content
        large = {
            name: record
            for name, record in content.items()
            if isinstance(record, ArrayRecord) and record.count_bytes() >= self._share_min_bytes
        }
        if not large:
            return encode_message(message), (), []
        rest = RecordDict({k: v for k, v in content.items() if k not in large})
        refs = [self._shared_ref(large[k]) if k in large else None for k in content]
        return (
            encode_message(Message.from_parts(message.metadata, content=rest)),
            tuple(content),
            refs,
        )

    def run(
        self, node_id: int, message_id: str, args: tuple[Any, ...]
    ) -> tuple[bytes, bytes | None]:
        """Run ``ClientActor.run(*args)`` on an idle actor and return its result."""
        actor = self._borrow()
        exceptions = self.ray.exceptions
        with self._lock:
            self._calls[message_id] = actor
        try:
            if actor.pid is None:  # a replacement: its first call waits for it to start
                actor.pid = self.ray.get(actor.handle.pid.remote())
            return cast(tuple[bytes, bytes | None], self.ray.get(actor.handle.run.remote(*args)))
        except exceptions.RayTaskError as err:  # raised inside run(): the actor lives on
            cause = err.cause if isinstance(err.cause, BaseException) else err
            raise SimulationError(
                f"The Ray actor running node {node_id} failed: {type(cause).__name__}: {cause}"
            ) from err
        except exceptions.RayError as err:
            pid = actor.pid
            with self._lock:
                del self._calls[message_id]
                cancelled = message_id in self._cancelled
                self._cancelled.discard(message_id)
            actor = self._replace(actor)
            if self._stopped:
                raise SimulationError(
                    f"The call to node {node_id} was stopped: the backend was closed."
                ) from err
            if cancelled:
                raise SimulationError(
                    f"The Ray actor running node {node_id} was killed: the call did not return "
                    "in time. A new actor runs the next calls."
                ) from err
            raise SimulationError(
                f"The ClientApp of node {node_id} crashed: its Ray worker process"
                f"{'' if pid is None else f' (pid {pid})'} died ({type(err).__name__}), e.g. "
                "through os._exit, a segmentation fault or running out of memory; see that "
                "worker's log. The worker was replaced, so other calls go on."
            ) from err
        finally:
            with self._lock:
                self._calls.pop(message_id, None)
            self._idle.put(actor)

    def cancel(self, message_ids: Collection[str]) -> None:
        """Kill the actors running these calls; their threads replace them."""
        with self._lock:  # held, so that no actor is lent to another call meanwhile
            for message_id in message_ids:
                actor = self._calls.get(message_id)
                if actor is not None:
                    self._cancelled.add(message_id)
                    _kill(self.ray, actor.handle)

    def stop(self) -> None:
        """Kill the actors; calls waiting for one fail."""
        with self._lock:
            self._stopped = True
            actors, self._all = self._all, []
            self._shared.clear()
        for actor in actors:
            _kill(self.ray, actor.handle)

    def _borrow(self) -> _Actor:
        while True:
            if self._stopped:
                raise SimulationError("The backend was closed; call start(app) again.")
            try:
                return self._idle.get(timeout=0.5)
            except queue.Empty:
                continue

    def _replace(self, dead: _Actor) -> _Actor:
        _kill(self.ray, dead.handle)
        with self._lock:
            if self._stopped:
                return dead
            try:
                fresh = _Actor(self._actor_class.remote(self._app_ref))
            except Exception:  # Ray itself is failing: the next call on it tries again
                return dead
            self._all = [fresh if a is dead else a for a in self._all]
        return fresh

    def _shared_ref(self, record: ArrayRecord) -> Any:
        # Arrays are immutable and the entry keeps them alive, so their ids identify them.
        key = tuple((name, id(array)) for name, array in record.items())
        with self._lock:
            entry = self._shared.get(key)
            if entry is None:
                frame = encode_record_dict(RecordDict({"arrays": record}))
                entry = (record, self.ray.put(frame))
                self._shared[key] = entry
                while len(self._shared) > SHARED_CACHE_SIZE:
                    self._shared.popitem(last=False)
            else:
                self._shared.move_to_end(key)
            return entry[1]


def _kill(ray: Any, handle: Any) -> None:
    # An actor already dead, or Ray shutting down: nothing is left to stop.
    with suppress(Exception):
        ray.kill(handle, no_restart=True)
