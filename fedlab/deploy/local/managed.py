"""Managed runs: what ``Federation.deploy(...)`` does.

``deploy(spec, runner, local=N)`` starts a SuperLink and N SuperNodes as child processes
on 127.0.0.1 (free ports, a temporary state directory), ships the spec's ClientApp to
them as an app bundle, runs the strategy in this process over a
:class:`~fedlab.deploy.client.grpcgrid.GrpcGrid`, and stops every process again — also when the
run fails or is interrupted. ``deploy(spec, runner, "host:port")`` does the same against
a SuperLink that is already running (the address of its Control API).

The local processes run in a private temporary directory, not the caller's: like remote
SuperNodes, they see only the code the bundle carries. A Federation built with
``dataset=...`` has each local SuperNode's partition written there as parquet, and the
node's ``partition-path`` names it, so ``load_partition(ctx)`` works as in a simulation.

Deploying supplies only the grid: the run goes through the Federation's own
:class:`~fedlab.run.Runner`, handed a factory of GrpcGrids, so History, the terminal
console and the notebook dashboard receive the same events as for ``fed.run()``, and the
same :class:`~fedlab.server.Result` comes back.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedlab.datasets import PARTITION_PATH, write_partition
from fedlab.deploy.bundle import build_bundle
from fedlab.deploy.local import warm
from fedlab.deploy.local._cluster import LocalCluster
from fedlab.deploy.local._forked import prestart
from fedlab.deploy.security.settings import ClientSecurity
from fedlab.devices import DEVICE_KEY, device_for, resolve_devices
from fedlab.errors import FederationError, FedlabError
from fedlab.events import EventBus
from fedlab.run import Runner, RunSpec
from fedlab.server import Grid, Result

__all__ = ["deploy"]

_log = logging.getLogger("fedlab.deploy")
_T = TypeVar("_T")


def deploy(
    spec: RunSpec,
    runner: Runner,
    address: str | None = None,
    *,
    local: int | None = None,
    rounds: int = 3,
    insecure: bool = False,
    root_cert: str | os.PathLike[str] | None = None,
    token: str | None = None,
    token_file: str | os.PathLike[str] | None = None,
    serverappio_address: str | None = None,
    signing_key: Ed25519PrivateKey | None = None,
    startup_timeout: float = 120.0,
    keep: bool = False,
) -> Result:
    """Run ``spec`` on SuperNodes and return its Result (see the module docstring).

    Parameters
    ----------
    spec
        What a Federation runs; its ClientApp is shipped, its strategy (or ServerApp) runs
        here.
    runner
        The Federation's runs, which this one joins (its History, displays, subscribers).
    address
        The Control API of a running SuperLink, ``"host:port"``. Give this or ``local``.
    local
        Start this many SuperNodes (and a SuperLink) on this machine for the run.
    rounds
        How many rounds to run.
    insecure
        Talk to the SuperLink at ``address`` in plaintext without credentials (an
        ``--insecure`` SuperLink, on a network you trust). Local runs always use TLS,
        node keys and tokens, with throwaway certificates and keys.
    root_cert, token, token_file
        With ``address``: the CA certificate to check the SuperLink's against (default:
        the system's CAs), and your Control API token (or a file holding it; default
        the ``FEDLAB_TOKEN`` environment variable).
    serverappio_address
        The SuperLink's ServerAppIo API; by default the SuperLink tells (same host).
    signing_key
        Sign the bundle with this Ed25519 key (SuperNodes that trust it accept the code).
        A local run signs with a fresh key, the only one its SuperNodes trust.
    startup_timeout
        Seconds to wait for local processes to start and the SuperNodes to connect.
    keep
        With ``local``: leave the SuperLink and SuperNodes running after the run, and
        reuse them for the next ``keep=True`` run with the same nodes (a warm start, e.g.
        the next cell of a notebook); a cluster with a dead process is replaced by a
        fresh one. ``fedlab.deploy.local.shutdown()`` stops it, as does the interpreter's
        end (:mod:`fedlab.deploy.local.warm`).

    Raises
    ------
    FederationError
        If the arguments do not describe one deployment.
    DeployError
        If a process fails to start or the SuperLink cannot be reached.
    """
    _check(spec, address, local)
    if local is not None and LocalCluster.fork:
        prestart()  # the template imports the daemons' modules while the bundle is built
    if local is not None and signing_key is None:
        # The local SuperNodes trust only this run's key (a kept cluster: only this
        # interpreter's), so they run only this process's code.
        signing_key = warm.signing_key() if keep else Ed25519PrivateKey.generate()
    if local is not None and keep:
        assert signing_key is not None
        key = signing_key
        bundle, cluster = _bundle_meanwhile(spec, key, lambda: warm.kept_cluster(
            local, lambda folder: _node_configs(spec, local, folder), key, startup_timeout
        ))  # fmt: skip
        assert cluster.addresses is not None
        links = cluster.addresses
        return _attached_run(spec, runner, rounds, bundle, links.control, links.serverappio,
                             local, startup_timeout, cluster.security)  # fmt: skip
    if local is not None:
        assert signing_key is not None
        cluster = LocalCluster(
            local, [], startup_timeout=startup_timeout, trusted_keys=[signing_key.public_key()]
        )
        try:  # the partitions go into the cluster's directory, removed when it stops
            cluster.node_configs = _node_configs(spec, local, cluster.directory / "partitions")
            # The processes start while this one builds the bundle; stopped whatever happens.
            bundle, _ = _bundle_meanwhile(spec, signing_key, cluster.start)
            assert cluster.addresses is not None
            links = cluster.addresses
            return _attached_run(spec, runner, rounds, bundle, links.control, links.serverappio,
                                 local, startup_timeout, cluster.security)  # fmt: skip
        finally:
            cluster.stop()
    bundle = build_bundle(spec.client_app, run_config=spec.run_config, signing_key=signing_key)
    assert address is not None
    security = ClientSecurity.from_options(
        insecure=insecure, root_cert=root_cert, token=token, token_file=token_file
    )
    if not security.insecure and not security.token:
        raise FederationError(
            f"The SuperLink at {address} needs your Control API token: pass token_file='my.token' (or "
            "token=..., or set FEDLAB_TOKEN; its operator makes one with `fedlab user add NAME`), and "
            "root_cert='ca.pem' for a private CA; insecure=True only for an --insecure SuperLink."
        )
    return _attached_run(
        spec, runner, rounds, bundle, address, serverappio_address, 0, startup_timeout, security
    )


class _Background(Generic[_T]):
    """``work()`` on a thread of its own; :meth:`result` waits for it (or re-raises)."""

    def __init__(self, work: Callable[[], _T]) -> None:
        self._work = work
        self._value: list[_T] = []
        self._error: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name="fedlab-local-start", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value.append(self._work())
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            self._error.append(exc)

    def result(self) -> _T:
        """What ``work()`` returned, once it has; its exception, raised here."""
        self._thread.join()
        if self._error:
            raise self._error[0]
        return self._value[0]


def _bundle_meanwhile(
    spec: RunSpec, key: Ed25519PrivateKey, start: Callable[[], _T]
) -> tuple[bytes, _T]:
    """Build the run's bundle on a thread while ``start()`` runs here; both results.

    The processes are started from the calling thread, not the short-lived one: Linux's
    parent-death signal follows the thread that started a process.
    """
    job = _Background(
        lambda: build_bundle(spec.client_app, run_config=spec.run_config, signing_key=key)
    )
    try:
        started = start()
    except BaseException:
        try:
            job.result()
        except BaseException:  # noqa: BLE001, S110 - the start's error is the one raised
            pass
        raise
    return job.result(), started


def _check(spec: RunSpec, address: str | None, local: int | None) -> None:
    if (address is None) == (local is None):
        raise FederationError(
            "Give either local=N (start N SuperNodes on this machine) or the address of a "
            "running SuperLink, e.g. fed.deploy('superlink.example:9093', root_cert='ca.pem', "
            "token_file='my.token')."
        )
    if local is not None and (not isinstance(local, int) or isinstance(local, bool) or local < 1):
        raise FederationError(f"local must be a positive number of SuperNodes, got {local!r}.")
    if spec.checkpoint_dir is not None:
        raise FederationError(
            "Checkpoints are for simulations (node states live on the SuperNodes in a deployment); "
            "create the Federation without checkpoint_dir to deploy it."
        )


def _node_configs(spec: RunSpec, local: int, partitions: Path) -> list[str]:
    if spec.dataset is not None:
        _check_partitions(spec, local)
    configs = []
    devices = resolve_devices(spec.devices)
    for index in range(local):
        config: dict[str, Any] = {"partition-id": index, "num-partitions": local}
        config[DEVICE_KEY] = device_for(devices, index)
        if spec.node_configs is not None and len(spec.node_configs) == local:
            config.update(spec.node_configs[index])
        path = config.get(PARTITION_PATH)
        if path is not None:  # the nodes run elsewhere; the caller meant their own directory
            config[PARTITION_PATH] = os.path.abspath(os.path.expanduser(str(path)))
        elif spec.dataset is not None:
            pid = config["partition-id"]
            if not isinstance(pid, int) or isinstance(pid, bool):
                raise FederationError(
                    f"node_configs[{index}]['partition-id'] must be an int, got {pid!r}."
                )
            folder = partitions / f"partition-{index}"
            write_partition(spec.dataset, pid, folder)
            config[PARTITION_PATH] = str(folder)
        configs.append(" ".join(f"{k}={_quoted(v)}" for k, v in config.items()))
    return configs


def _check_partitions(spec: RunSpec, local: int) -> None:
    assert spec.dataset is not None
    counts = [spec.dataset.partitioner(split).num_partitions for split in spec.dataset.partitioners]
    if local > min(counts):
        raise FederationError(
            f"deploy(local={local}) starts {local} SuperNodes, but the dataset has only "
            f"{min(counts)} partitions; pass local={min(counts)} or fewer, or partition the "
            "dataset into more."
        )
    if max(counts) > local:
        left = max(counts) - local
        unused = (
            f"partition {local} goes" if left == 1 else f"partitions {local}-{local + left - 1} go"
        )
        _log.warning(
            "The dataset has %d partitions but deploy(local=%d) starts %d SuperNodes, so %s "
            "unused; pass local=%d to use every partition.",
            max(counts),
            local,
            local,
            unused,
            max(counts),
        )


def _quoted(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value).lower() if isinstance(value, bool) else repr(value)


def _attached_run(
    spec: RunSpec,
    runner: Runner,
    rounds: int,
    bundle: bytes,
    control_address: str,
    serverappio_address: str | None,
    wait_nodes: int,
    startup_timeout: float,
    security: ClientSecurity,
) -> Result:
    from fedlab.deploy.client.control_client import ControlClient
    from fedlab.deploy.client.grpcgrid import GrpcGrid

    control = ControlClient(control_address, security=security)
    serverappio = serverappio_address or control.serverappio_address
    run_id = control.create_run(bundle, dict(spec.run_config), attached=True)

    def make_grid(bus: EventBus) -> Grid:
        grid = GrpcGrid(serverappio, run_id, events=bus, security=security)
        if wait_nodes:
            grid.wait_for_nodes(wait_nodes, startup_timeout)
        return grid

    status, error = "failed", None
    try:
        result = runner.run(spec, rounds, grid_factory=make_grid)
        status = "stopped" if result.stopped_early else "completed"
        return result
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        try:
            control.finish_run(run_id, status, error)
        except FedlabError:  # the SuperLink may be gone already; the run's outcome stands
            pass
        control.close()
