"""`RayBackend`: simulated clients run in Ray actors, on this machine or on a Ray cluster.

For simulations that outgrow one machine (``pip install "fedlab-sdk[ray]"``). Each actor
is a worker process that reserves ``num_cpus``/``num_gpus`` of the cluster and holds one
copy of the ClientApp; actors are made once and reused for every call and round, so a
client's module-level caches (a loaded dataset, a compiled model) stay warm per actor.

What crosses to an actor is bytes made by fedlab's own codec, never pickled data: the
message (:func:`~fedlab.wire.codec.encode_message`), the node's configs and its
``context.state`` (:func:`~fedlab.wire.codec.encode_record_dict`); the reply and the
new state come back the same way. An ArrayRecord sent unchanged to many nodes (the global
model of a round) is encoded and put into Ray's object store once, so it is copied to each
machine of the cluster once, not once per client. Only the ClientApp itself, which is
code, is shipped by Ray (pickled with its closures, as Ray ships any function).

``ray`` is imported when a RayBackend is built, never by ``import fedlab``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from fedlab.context import Context
from fedlab.errors import MissingDependencyError, SimulationError
from fedlab.message import Message
from fedlab.records import ConfigRecord, RecordDict
from fedlab.simulation._daemon_pool import DaemonPool
from fedlab.simulation._ray_actor import ClientActor
from fedlab.simulation._ray_pool import ActorPool
from fedlab.wire.codec import decode_message, decode_record_dict, encode_record_dict

if TYPE_CHECKING:
    from fedlab.client import ClientApp

__all__ = ["RayBackend"]

T = TypeVar("T")

#: An ArrayRecord at least this large goes through the object store once per round;
#: smaller ones travel inside each call, where Ray inlines them more cheaply.
SHARE_MIN_BYTES = 256 * 1024
# Ray replaces 127.0.0.1 by the machine's network address unless this is off when it is
# imported; a local instance then listens on loopback only.
_LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
_NO_USAGE_STATS_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}
#: Whether this process imported ray with _LOOPBACK_ENV (its local instances stay there).
_imported_on_loopback = False
# How long close() waits for each thread whose call was stopped with its actor.
_JOIN_S = 10.0


class RayBackend:
    """Runs client calls in Ray actors, reused across calls and rounds.

    Parameters
    ----------
    address
        ``None`` starts a private local Ray instance (loopback only, no dashboard, no
        usage statistics) that :meth:`close` shuts down; ``"host:port"`` or ``"auto"``
        connects to a running cluster, which :meth:`close` only disconnects from. If
        this process is already connected to Ray, that connection is used as it is.
    num_cpus, num_gpus
        What each client reserves on the cluster (one actor runs one client at a time).
    max_workers
        At most this many actors; by default as many as the cluster's resources allow
        (e.g. 8 CPUs and ``num_cpus=2`` give 4), at least one.
    init_kwargs
        Extra keyword arguments for ``ray.init`` (e.g. ``{"runtime_env": {...}}``, or
        ``{"num_cpus": 8}`` for a local instance).

    Raises
    ------
    MissingDependencyError
        If ray is not installed.

    Notes
    -----
    ::

        grid = SimulationGrid(app, 1000, backend=RayBackend(address="auto", num_gpus=0.25))

    Ray fixes at import whether 127.0.0.1 means this machine's network address: a process
    that started a local instance (``address=None``) first keeps Ray on loopback, so
    connect such a process only to clusters started on loopback as well.
    """

    name = "ray"
    deferred = False
    cancel_stops = True

    def __init__(
        self,
        *,
        address: str | None = None,
        num_cpus: float = 1,
        num_gpus: float = 0,
        max_workers: int | None = None,
        init_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        for label, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise SimulationError(f"{label} must be a number >= 0, got {value!r}.")
        if max_workers is not None and (
            isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
        ):
            raise SimulationError(f"max_workers must be an int >= 1 or None, got {max_workers!r}.")
        if address is not None and (not isinstance(address, str) or not address):
            raise SimulationError(
                f"address must be 'host:port', 'auto' or None (a local instance), got {address!r}."
            )
        self._address = address
        self._num_cpus = num_cpus
        self._num_gpus = num_gpus
        self._max_workers = max_workers
        self._init_kwargs = dict(init_kwargs or {})
        self._ray = _import_ray(loopback=address is None)
        self._owns_connection = False
        self._workers: ActorPool | None = None
        self._pool: DaemonPool | None = None

    @property
    def concurrency(self) -> int:
        """The number of actors (before :meth:`start`: ``max_workers``, or 1)."""
        return self._workers.size if self._workers is not None else self._max_workers or 1

    def start(self, app: ClientApp) -> None:
        """Connect to Ray (or start it), ship ``app`` and start the actors.

        Raises
        ------
        SimulationError
            If the app cannot be shipped or the actors do not start (e.g. fedlab is not
            installed on the cluster's machines, or no machine has the resources asked).
        """
        self._stop_workers()
        ray = self._ray
        if not ray.is_initialized():
            self._connect()
        try:
            try:
                app_ref = ray.put(app)
            except Exception as err:  # cloudpickle raises what the unpicklable object does
                raise SimulationError(
                    f"The ClientApp cannot be shipped to Ray workers ({type(err).__name__}: "
                    f"{err}). Create unpicklable objects (locks, open files, connections) "
                    "inside the handler or a lifespan instead of capturing them."
                ) from err
            remote = ray.remote(num_cpus=self._num_cpus, num_gpus=self._num_gpus)
            self._workers = ActorPool(
                ray,
                remote(ClientActor),
                app_ref,
                self._actor_count(),
                share_min_bytes=SHARE_MIN_BYTES,
            )
        except BaseException:
            self.close()  # leave no Ray instance behind a backend that cannot run
            raise

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` on one of ``concurrency`` daemon threads, each driving one actor at a time."""
        if self._workers is None:
            raise SimulationError("The backend was not started; call start(app) first.")
        if self._pool is None:
            self._pool = DaemonPool(self._workers.size, "fedlab-ray")
        return self._pool.submit(fn)

    def call(self, message: Message, context: Context) -> Message:
        """Run the app on an idle actor; write the node's new state into ``context``.

        Raises
        ------
        SimulationError
            If the actor died while running the client (it is replaced, so later calls
            work), or the call failed inside Ray.
        """
        workers = self._workers
        if workers is None:
            raise SimulationError("The backend was not started or is closed; call start(app).")
        frame, keys, shared = workers.split(message)
        configs = RecordDict(
            {
                "node-config": ConfigRecord(dict(context.node_config)),
                "run-config": ConfigRecord(dict(context.run_config)),
            }
        )
        state = encode_record_dict(context.state)
        args = (context.run_id, context.node_id, frame, encode_record_dict(configs), state)
        reply, new_state = workers.run(
            context.node_id, message.metadata.message_id, (*args, keys, *shared)
        )
        if new_state is not None:
            context.state = decode_record_dict(new_state)
        return decode_message(reply)

    def cancel(self, message_ids: Collection[str]) -> None:
        """Kill the actors running these calls; fresh actors run the next calls."""
        workers = self._workers
        if workers is not None:
            workers.cancel(message_ids)

    def close(self) -> None:
        """Stop the actors (calls still running end with an error) and leave Ray.

        A local instance this backend started is shut down; a cluster it connected to
        keeps running.
        """
        self._stop_workers()
        if self._owns_connection:
            self._owns_connection = False
            self._ray.shutdown()

    # -- internals ----------------------------------------------------------------------

    def _connect(self) -> None:
        kwargs: dict[str, Any] = {"include_dashboard": False}
        kwargs.update(self._init_kwargs)
        local = self._address is None
        # "local" and not None: None would join any cluster already running on this machine.
        kwargs["address"] = "local" if local else self._address
        env = {**_NO_USAGE_STATS_ENV, **(_LOOPBACK_ENV if _imported_on_loopback else {})}
        try:
            # The instance's processes inherit the variables and read them as they start.
            with _environment(env if local else {}):
                self._ray.init(**kwargs)
        except Exception as err:
            where = "a local Ray instance" if local else f"the Ray cluster at {self._address!r}"
            raise SimulationError(
                f"Could not start or reach {where} ({type(err).__name__}: {err}). Check the "
                "address (the one `ray start --head` printed, or 'auto' on a cluster node) "
                "and that this machine runs the cluster's Ray and Python versions."
            ) from err
        self._owns_connection = True

    def _actor_count(self) -> int:
        resources = self._ray.cluster_resources()
        limits = [
            int(resources.get(name, 0) // amount)
            for name, amount in (("CPU", self._num_cpus), ("GPU", self._num_gpus))
            if amount > 0
        ]
        count = min(limits) if limits else int(resources.get("CPU", 1))
        if count < 1 and self._owns_connection and self._address is None:
            raise SimulationError(
                f"Each client asks for num_cpus={self._num_cpus}, num_gpus={self._num_gpus}, "
                f"but this machine has {resources.get('CPU', 0):g} CPUs and "
                f"{resources.get('GPU', 0):g} GPUs; ask for less."
            )
        count = max(1, count)  # an autoscaling cluster may add what is missing
        return min(count, self._max_workers) if self._max_workers else count

    def _stop_workers(self) -> None:
        pool, self._pool = self._pool, None
        workers, self._workers = self._workers, None
        if workers is not None:
            workers.stop()
        if pool is not None:
            pool.shutdown(wait=_JOIN_S)  # quick: the actors the calls wait on are gone


def _import_ray(*, loopback: bool) -> Any:
    """Import ray; on first import, ``loopback`` keeps the local instances it starts there."""
    global _imported_on_loopback
    first = "ray" not in sys.modules
    try:
        with _environment(_LOOPBACK_ENV if loopback and first else {}):
            import ray
    except ImportError as err:
        raise MissingDependencyError("ray", "ray", "The 'ray' simulation backend") from err
    if loopback and first:
        _imported_on_loopback = True
    return ray


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set the variables in ``values`` that the user has not set, for the ``with`` block.

    They are removed afterwards, so that later child processes are not affected.
    """
    added = [name for name in values if name not in os.environ]
    for name in added:
        os.environ[name] = values[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
