"""A local cluster kept running across runs: ``fed.deploy(local=N, keep=True)``.

A notebook that deploys cell after cell need not start a SuperLink and N SuperNodes each
time. With ``keep=True`` the cluster outlives the run, and the next ``keep=True`` run
with the same number of nodes, the same node configs and the same signing key reuses it
(the same processes, already connected). A cluster any of whose processes died is
stopped and a fresh one started, so a failed run or a killed node never poisons the
next run. :func:`shutdown` stops it; so does the end of the interpreter.

The kept nodes trust one key, made once for this interpreter and held only in it, so
they still run only code this process signed (each bundle bound to its own run).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fedlab.deploy.local._cluster import LocalCluster

__all__ = ["current", "kept_cluster", "shutdown", "signing_key"]

_lock = threading.Lock()
_key: Ed25519PrivateKey | None = None
_kept: tuple[LocalCluster, bytes] | None = None


def signing_key() -> Ed25519PrivateKey:
    """The key this interpreter signs kept clusters' bundles with (made on first use)."""
    global _key
    with _lock:
        if _key is None:
            _key = Ed25519PrivateKey.generate()
        return _key


def _public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _healthy(cluster: LocalCluster, num_nodes: int) -> bool:
    processes = cluster.processes
    return len(processes) == num_nodes + 1 and all(p.poll() is None for p in processes)


def kept_cluster(
    num_nodes: int,
    node_configs: Callable[[Path], list[str]],
    key: Ed25519PrivateKey,
    startup_timeout: float,
) -> LocalCluster:
    """The running kept cluster if it fits, else a new one (started, then kept).

    Parameters
    ----------
    num_nodes
        How many SuperNodes.
    node_configs
        Makes the nodes' configs given the folder for their partitions (inside the
        cluster's directory); a kept cluster fits only if they come out the same.
    key
        The key the run's bundle is signed with; the nodes trust only it.
    startup_timeout
        Seconds to wait for a new cluster's processes to start.

    Raises
    ------
    DeployError
        If a process of a new cluster fails to start.
    """
    global _kept
    with _lock:
        if _kept is not None:
            cluster, trusted = _kept
            fits = trusted == _public(key) and _healthy(cluster, num_nodes)
            if fits and node_configs(cluster.directory / "partitions") == cluster.node_configs:
                return cluster
            _kept = None
            cluster.stop()
        cluster = LocalCluster(
            num_nodes, [], startup_timeout=startup_timeout, trusted_keys=[key.public_key()]
        )
        try:
            cluster.node_configs = node_configs(cluster.directory / "partitions")
            cluster.start()
        except BaseException:
            cluster.stop()
            raise
        _kept = (cluster, _public(key))
        return cluster


def current() -> LocalCluster | None:
    """The kept cluster, if one is running (its ``pids``, ``directory``, ``addresses``)."""
    with _lock:
        return None if _kept is None else _kept[0]


def shutdown() -> bool:
    """Stop the cluster ``deploy(local=N, keep=True)`` kept; False if none was running.

    Examples
    --------
    >>> import fedlab.deploy.local
    >>> fedlab.deploy.local.shutdown()
    False
    """
    global _kept
    with _lock:
        kept, _kept = _kept, None
    if kept is None:
        return False
    kept[0].stop()
    return True
