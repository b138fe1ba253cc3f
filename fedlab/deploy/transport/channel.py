"""Channels, servers and retries: the gRPC settings every deployment process shares."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from fedlab.deploy.security.settings import ClientSecurity
from fedlab.deploy.security.tls import channel_credentials
from fedlab.errors import DeployError

__all__ = [
    "Backoff",
    "CHUNK_SIZE",
    "MAX_RPC_BYTES",
    "check_address",
    "is_retryable",
    "open_channel",
    "open_server",
    "retry_call",
]

T = TypeVar("T")

#: Objects (message contents, bundles) stream in chunks of this many bytes.
CHUNK_SIZE = 4 * 2**20
#: The largest single gRPC message either side accepts. Objects stream in chunks far below
#: it, so model size is bounded by memory, not by this; a bigger frame is refused with
#: RESOURCE_EXHAUSTED before its payload is allocated.
MAX_RPC_BYTES = 16 * 2**20

_COMMON_OPTIONS = [
    ("grpc.max_send_message_length", MAX_RPC_BYTES),
    ("grpc.max_receive_message_length", MAX_RPC_BYTES),
]
# gRPC's own reconnect backoff grows to 120 s by default: far too slow to notice that a
# restarted SuperLink is back. Our retry loops pace themselves (Backoff).
_CHANNEL_OPTIONS = [
    *_COMMON_OPTIONS,
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
]
# Without this a second server could bind the same port (SO_REUSEPORT) and silently take
# half the connections; we want "address already in use" instead.
_SERVER_OPTIONS = [*_COMMON_OPTIONS, ("grpc.so_reuseport", 0)]
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def check_address(address: str) -> str:
    """Return ``address`` if it looks like ``HOST:PORT``; raise DeployError otherwise."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise DeployError(
            f"{address!r} is not a HOST:PORT address; write e.g. 127.0.0.1:9092 or [::1]:9092."
        )
    return address


def open_channel(address: str, security: ClientSecurity) -> Any:
    """Open a channel to ``address`` with fedlab's size limits and reconnect pace.

    TLS unless ``security.insecure``: verified against ``security.root_certificates``
    (or the system's CAs), for ``security.target_name`` when given.
    """
    check_address(address)
    if security.insecure:
        return grpc.insecure_channel(address, options=_CHANNEL_OPTIONS)
    options: list[tuple[str, Any]] = list(_CHANNEL_OPTIONS)
    if security.target_name:
        options.append(("grpc.ssl_target_name_override", security.target_name))
    return grpc.secure_channel(address, channel_credentials(security.root_certificates), options=options)


def open_server(max_workers: int) -> Any:
    """Create a gRPC server whose thread pool serves ``max_workers`` calls at once."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="fedlab-grpc")
    return grpc.server(pool, options=_SERVER_OPTIONS, maximum_concurrent_rpcs=max_workers * 4)


def is_retryable(error: BaseException) -> bool:
    """True for errors that mean "the other side is unreachable for now", worth retrying."""
    return isinstance(error, grpc.RpcError) and error.code() in _RETRYABLE


class Backoff:
    """Exponential delays with jitter: ``initial``, doubling, capped at ``maximum`` seconds."""

    def __init__(self, initial: float = 0.25, maximum: float = 20.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def reset(self) -> None:
        """Start again from the initial delay (after a success)."""
        self._next = self.initial

    def next_delay(self) -> float:
        """Return the next delay and double the one after it."""
        delay = self._next * random.uniform(0.8, 1.2)
        self._next = min(self._next * 2, self.maximum)
        return min(delay, self.maximum)


def retry_call(call: Callable[[], T], *, within: float, what: str) -> T:
    """Run ``call``; while the other side is unreachable, retry with backoff for ``within`` s.

    Raises
    ------
    DeployError
        If the other side stays unreachable for ``within`` seconds (``what`` names it).
    """
    deadline = time.monotonic() + within
    backoff = Backoff(maximum=2.0)
    while True:
        try:
            return call()
        except grpc.RpcError as err:
            remaining = deadline - time.monotonic()
            if not is_retryable(err) or remaining <= 0:
                if is_retryable(err):
                    raise DeployError(
                        f"{what} did not answer for {within:.0f}s ({err.code().name}: "
                        f"{err.details()}); check that it is running and reachable."
                    ) from err
                raise
            time.sleep(min(backoff.next_delay(), remaining))
