"""Which ClientApp a SuperNode runs for a run, and with which Context.

Either the node was started with ``--app package.module:attr`` (it then runs that app for
every run, in its own process, and never executes shipped code), or it fetches each run's
bundle from the SuperLink the first time it gets an instruction for that run, checks it
for that run (:func:`fedlab.deploy.bundle.load_run_bundle`: the node's trusted keys, the
run config the signature covers, its expiry, a nonce never seen for another run) and runs
it in a process of the run's own (:class:`~fedlab.deploy.supernode.runner.RunProcess`).
Each run gets one Context per node, which persists across rounds in the node (so it
survives a crash of the run's process).

The pinned ``--app`` stays in the node's process: it is code the node's operator
installed, not code that arrived over the network, and an app object cannot cross a
process boundary without pickle.
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from fedlab.client import ClientApp
from fedlab.context import Context, UserConfig, UserConfigValue
from fedlab.deploy.client.control_client import RunInfo
from fedlab.deploy.import_path import import_object
from fedlab.deploy.supernode.runner import RunProcess
from fedlab.errors import BundleError, DeployError
from fedlab.message import Message

__all__ = ["AppCall", "RunApps", "load_app", "parse_node_config"]

#: What runs one instruction of a run: the pinned ClientApp, or the run's process.
AppCall = Callable[[Message, Context], Message]

#: How many runs' Contexts a node keeps (the oldest are dropped first).
MAX_RUNS = 64


def parse_node_config(text: str) -> UserConfig:
    """Parse ``"partition-id=0 num-partitions=3 region=eu"`` into a config dict.

    Values become ints, floats or bools (``true``/``false``) when they read as one, strings
    otherwise; quote a value to keep spaces in it.

    Examples
    --------
    >>> parse_node_config('partition-id=0 lr=0.5 gpu=true name="node a"')
    {'partition-id': 0, 'lr': 0.5, 'gpu': True, 'name': 'node a'}
    """
    config: UserConfig = {}
    for item in shlex.split(text):
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise DeployError(
                f"Node config item {item!r} is not KEY=VALUE; write e.g. "
                '--node-config "partition-id=0 num-partitions=3".'
            )
        config[key] = _value(raw)
    return config


def _value(raw: str) -> UserConfigValue:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def load_app(spec: str) -> ClientApp:
    """Import the ClientApp ``"package.module:attr"`` (attr may be a factory returning one).

    The current directory is put on the import path first, as for ``python -m``.

    Raises
    ------
    DeployError
        If the module or attribute is missing or is not a ClientApp.
    """
    try:
        target = import_object(spec, directory=os.getcwd())
    except BundleError as err:  # not of the form package.module:attr
        raise DeployError(f"--app {err}") from None
    except (ImportError, AttributeError) as err:
        raise DeployError(f"Cannot load the ClientApp {spec!r}: {err}.") from err
    if not isinstance(target, ClientApp) and callable(target):
        target = target()
    if not isinstance(target, ClientApp):
        raise DeployError(
            f"{spec!r} is a {type(target).__name__}, not a fedlab.ClientApp (or a function "
            "returning one)."
        )
    return target


class RunApps:
    """The ClientApp and the Context of each run this node works for.

    Parameters
    ----------
    get_run
        Returns a run's :class:`RunInfo` (a Fleet ``GetRun`` call).
    fetch_bundle
        Returns the bytes of a run's bundle (a Fleet ``FetchBundle`` call).
    node_config
        The node's ``--node-config``.
    pinned
        The ``--app`` ClientApp, if the node was given one.
    trusted_keys
        Ed25519 public keys; if given, only bundles signed by one of them for the run are run.
    allow_unsigned
        Without trusted keys, run bundles anyway (``--insecure-allow-unsigned``); without
        either, every bundle is refused.
    cpu_seconds, memory_mb
        Limits of each run's process (CPU time, address space); None for none.
    """

    def __init__(
        self,
        get_run: Callable[[int], RunInfo],
        fetch_bundle: Callable[[RunInfo], bytes],
        node_config: UserConfig,
        *,
        pinned: ClientApp | None = None,
        trusted_keys: Sequence[Any] | None = None,
        allow_unsigned: bool = False,
        cpu_seconds: float | None = None,
        memory_mb: int | None = None,
    ) -> None:
        self._get_run = get_run
        self._fetch_bundle = fetch_bundle
        self.node_config = dict(node_config)
        self.pinned = pinned
        self.trusted_keys = list(trusted_keys) if trusted_keys else None
        self.allow_unsigned = allow_unsigned
        self.cpu_seconds = cpu_seconds
        self.memory_mb = memory_mb
        self._runs: dict[int, RunProcess] = {}
        self._defaults: dict[int, UserConfig] = {}
        # Nonces of the signed bundles this node ran, to their run (replays are refused).
        self._nonces: dict[str, int] = {}
        self._infos: dict[int, RunInfo] = {}
        self._contexts: dict[int, Context] = {}
        self._lock = threading.Lock()

    def _info(self, run_id: int) -> RunInfo:
        with self._lock:
            run = self._infos.get(run_id)
        if run is None:
            run = self._get_run(run_id)
            with self._lock:
                self._infos[run_id] = run
                while len(self._infos) > MAX_RUNS:
                    self._infos.pop(next(iter(self._infos)))
        return run

    def context(self, run_id: int, node_id: int) -> Context:
        """Return the Context of ``run_id`` on this node, created on first use.

        Call :meth:`app` first: a bundle's default run config is known once it is loaded.
        """
        with self._lock:
            context = self._contexts.get(run_id)
        if context is not None and context.node_id == node_id:
            return context
        run = self._info(run_id)
        with self._lock:  # the bundle's defaults, overridden by what the run was given
            run_config = {**self._defaults.get(run_id, {}), **run.run_config}
        context = Context(
            run_id=run_id, node_id=node_id, node_config=dict(self.node_config), run_config=run_config
        )
        with self._lock:
            self._contexts[run_id] = context
            while len(self._contexts) > MAX_RUNS:
                self._contexts.pop(next(iter(self._contexts)))
        return context

    def app(self, run_id: int) -> AppCall:
        """Return what runs ``run_id``'s instructions (fetching and checking its bundle once).

        Raises
        ------
        DeployError
            If the run ships no code and the node has no ``--app``.
        fedlab.errors.BundleError
            If the bundle is refused (tampered, not signed by a trusted key, signed for
            another run or config, expired).
        """
        if self.pinned is not None:
            return self.pinned
        with self._lock:
            known = self._runs.get(run_id)
        if known is not None:
            return known
        run = self._info(run_id)
        if not run.bundle_digest:
            raise DeployError(
                f"Run {run_id} ships no code and this SuperNode has no --app; start it with "
                "--app package.module:attr, or submit the run with a bundle."
            )
        from fedlab.deploy.bundle import load_run_bundle

        data = self._fetch_bundle(run)
        with self._lock:
            bundle = load_run_bundle(
                data,
                run_id=run_id,
                run_config=run.run_config,
                trusted_keys=self.trusted_keys,
                allow_unsigned=self.allow_unsigned,
                seen_nonces=self._nonces,
            )
            process = self._runs.setdefault(
                run_id, RunProcess(run_id, data, cpu_seconds=self.cpu_seconds, memory_mb=self.memory_mb)
            )
            self._defaults[run_id] = dict(bundle.run_config)
        return process

    def reap(self, idle_s: float, check_after_s: float) -> None:
        """End run processes idle ``idle_s`` seconds, or idle ``check_after_s`` s and finished.

        Asks the SuperLink whether each run idle for ``check_after_s`` has finished (its
        run info is refreshed); a process that is busy is never ended.
        """
        now = time.monotonic()
        with self._lock:
            idle = [
                (r, p) for r, p in self._runs.items() if not p.busy and now - p.last_used > check_after_s
            ]
        for run_id, process in idle:
            over = now - process.last_used > idle_s
            if not over:
                try:
                    over = self._get_run(run_id).finished
                except Exception:  # the SuperLink is unreachable: decide next time
                    continue
            if over:  # off this (the heartbeat) thread: an instruction may just have begun
                threading.Thread(target=self.forget, args=(run_id,), daemon=True).start()

    def forget(self, run_id: int) -> None:
        """End ``run_id``'s process; an instruction arriving later loads the run again."""
        with self._lock:
            process = self._runs.pop(run_id, None)
            self._infos.pop(run_id, None)
        if process is not None:
            process.close()

    def close(self) -> None:
        """End every run's process (the node is stopping)."""
        with self._lock:
            processes = list(self._runs.values())
            self._runs.clear()
        for process in processes:
            process.close()
