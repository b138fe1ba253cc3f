"""`RunSpec`: what a Federation runs, checked and settled once, when the Federation is made.

A spec is frozen: a run reads the spec it started with from beginning to end, so setting
an attribute of a Federation while it runs changes later runs only. Code that changes a
setting (``Federation.resume`` taking over a checkpoint directory, a user's
``fed.display = "plain"``) makes a new spec with :func:`dataclasses.replace`; a replaced
field is not checked again.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from fedlab.client import ClientApp
from fedlab.context import UserConfig
from fedlab.dashboard.display import Display
from fedlab.devices import Devices, check_devices
from fedlab.errors import FederationError
from fedlab.records import ArrayRecord
from fedlab.run._checks import (
    check_config,
    check_evaluate_fn,
    check_keep,
    check_parts,
    check_settings,
    settle_client_evaluation,
)
from fedlab.server import ServerApp
from fedlab.simulation import Backend
from fedlab.strategy import ConfigSource, EvaluateFn, Strategy
from fedlab.tracking import Logger, LoggerSpec, settle_loggers

if TYPE_CHECKING:
    from fedlab.datasets import FederatedDataset

__all__ = ["CheckpointKeep", "RunSpec"]

#: Which checkpoints a run keeps: the newest only, or every round's (to fork from).
CheckpointKeep = Literal["latest", "all"]

#: What each node is told about itself, e.g. ``{"partition-id": 0}``.
NodeConfigs = Sequence[Mapping[str, bool | int | float | str]]


@dataclass(frozen=True)
class RunSpec:
    """The description of a federation's runs; :class:`~fedlab.Federation` documents each field.

    Build one with :meth:`build`, which checks the arguments and settles what follows from
    them; the fields then hold the settled values.

    Attributes
    ----------
    client_app, strategy, server_app
        The code: the ClientApp, and either a Strategy or a ServerApp (the other is None).
    num_clients
        The number of simulated clients (from the dataset if one was given).
    initial_arrays
        The global model before round 1, as an ArrayRecord (None with a ServerApp).
    config, evaluate_config, evaluate_fn
        What the strategy sends for training and evaluation, and the server-side evaluation.
    run_config
        Each node's ``context.run_config``: the given one, or the scalars of ``config``,
        plus what a dataset registers.
    dataset, node_configs
        The FederatedDataset the clients load from, and per-client node configs.
    seed, backend, max_workers, timeout
        How the simulation runs.
    display
        The progress view a run shows.
    checkpoint_dir
        Where a checkpoint is written after every round, or None.
    checkpoint_keep
        ``"latest"`` (only the newest checkpoint) or ``"all"`` (every round's, for forking).
    loggers
        The tracking tools every run logs to (:mod:`fedlab.tracking`).
    devices
        ``"auto"`` or the checked device strings clients are spread over (see
        :mod:`fedlab.devices`); ``"auto"`` is settled when a run starts.
    note
        What the run's first line adds, e.g. that federated evaluation is skipped ("" for none).

    Examples
    --------
    >>> import numpy as np, fedlab as fl
    >>> app = fl.ClientApp()
    >>> spec = RunSpec.build(
    ...     app, fl.strategy.FedAvg(), server_app=None, num_clients=None, dataset=None,
    ...     initial_arrays=[np.zeros(2)], config={"lr": 0.1, "mode": "fast"},
    ...     evaluate_config=None, evaluate_fn=None, run_config=None, node_configs=None,
    ...     seed=0, backend="inline", max_workers=None, timeout=60.0, display="none",
    ...     checkpoint_dir=None)
    >>> spec.num_clients, spec.run_config
    (10, {'lr': 0.1, 'mode': 'fast'})
    """

    client_app: ClientApp
    strategy: Strategy | None
    server_app: ServerApp | None
    num_clients: int
    initial_arrays: ArrayRecord | None
    config: ConfigSource | None
    evaluate_config: ConfigSource | None
    evaluate_fn: EvaluateFn | None
    run_config: UserConfig
    dataset: FederatedDataset | None
    node_configs: NodeConfigs | None
    seed: int | None
    backend: str | Backend
    max_workers: int | None
    timeout: float | None
    display: Display
    checkpoint_dir: str | os.PathLike[str] | None
    note: str
    checkpoint_keep: CheckpointKeep = "latest"
    loggers: tuple[Logger, ...] = ()
    devices: str | tuple[str, ...] = "auto"

    @classmethod
    def build(
        cls,
        client_app: ClientApp,
        strategy: Strategy | None,
        *,
        server_app: ServerApp | None,
        num_clients: int | None,
        dataset: FederatedDataset | None,
        initial_arrays: ArrayRecord | Mapping[str, Any] | Sequence[Any] | None,
        config: ConfigSource | None,
        evaluate_config: ConfigSource | None,
        evaluate_fn: EvaluateFn | None,
        run_config: UserConfig | None,
        node_configs: NodeConfigs | None,
        seed: int | None,
        backend: str | Backend,
        max_workers: int | None,
        timeout: float | None,
        display: Display,
        checkpoint_dir: str | os.PathLike[str] | None,
        checkpoint_keep: CheckpointKeep = "latest",
        loggers: Sequence[LoggerSpec] | None = None,
        devices: Devices = "auto",
    ) -> RunSpec:
        """Check the arguments of ``Federation(...)`` and settle them into a spec.

        The arguments are those of :class:`~fedlab.Federation`, all given (the defaults are
        the Federation's). A dataset is registered here, and decides ``num_clients`` when
        that is None.

        Raises
        ------
        FederationError
            If an argument cannot be run; the message names it and the fix.
        """
        check_parts(client_app, strategy, server_app, initial_arrays)
        if evaluate_fn is not None:
            check_evaluate_fn(evaluate_fn)
        check_config("config", config)
        check_config("evaluate_config", evaluate_config)
        note = settle_client_evaluation(strategy, client_app)
        dataset_config: UserConfig = {}
        if dataset is not None:  # registered in-process; clients find it through their run_config
            from fedlab.datasets import attach

            num_clients, dataset_config = attach(dataset, num_clients)
        num_clients = 10 if num_clients is None else num_clients
        check_settings(num_clients, backend, checkpoint_dir, strategy, display)
        check_keep(checkpoint_keep, checkpoint_dir)
        given_devices = check_devices(devices)
        arrays = (
            initial_arrays
            if isinstance(initial_arrays, ArrayRecord) or initial_arrays is None
            else ArrayRecord(initial_arrays)
        )
        settled_config: UserConfig = (
            dict(run_config) if run_config is not None else _scalars(config)
        )
        settled_config.update(dataset_config)
        return cls(
            client_app=client_app,
            strategy=strategy,
            server_app=server_app,
            num_clients=num_clients,
            initial_arrays=arrays,
            config=config,
            evaluate_config=evaluate_config,
            evaluate_fn=evaluate_fn,
            run_config=settled_config,
            dataset=dataset,
            node_configs=node_configs,
            seed=seed,
            backend=backend,
            max_workers=max_workers,
            timeout=timeout,
            display=display,
            checkpoint_dir=checkpoint_dir,
            note=note,
            checkpoint_keep=checkpoint_keep,
            loggers=settle_loggers(loggers),
            devices="auto" if given_devices is None else given_devices,
        )

    def varied(
        self,
        *,
        strategy: Strategy | None = None,
        config: ConfigSource | None = None,
        dataset: FederatedDataset | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
    ) -> RunSpec:
        """Return this spec with another strategy, config or dataset, checked as :meth:`build` does.

        What is not given is kept, except ``checkpoint_dir``: a variant writes its own
        checkpoints (there when given) and never over those of the spec it came from. A new
        ``config`` also replaces, in ``run_config``, the scalars the old config put there; a
        new ``dataset`` (another partitioning) is registered and sets ``num_clients`` to its
        number of partitions.

        Raises
        ------
        FederationError
            If the new strategy or config cannot be run with this spec's ClientApp.
        """
        strategy = self.strategy if strategy is None else strategy
        if self.server_app is not None and strategy is not None:
            raise FederationError(
                "This federation runs a ServerApp, whose loop has no strategy to replace; "
                "build a Federation with strategy=... to vary its strategy."
            )
        check_config("config", config)
        note = settle_client_evaluation(strategy, self.client_app)
        run_config = dict(self.run_config)
        if config is not None:
            for key in _scalars(self.config):
                run_config.pop(key, None)
            run_config.update(_scalars(config))
        num_clients = self.num_clients
        if dataset is not None:
            from fedlab.datasets import attach

            num_clients, entry = attach(dataset, None)
            run_config.update(entry)
        return dataclasses.replace(
            self,
            strategy=strategy,
            num_clients=num_clients,
            dataset=self.dataset if dataset is None else dataset,
            config=self.config if config is None else config,
            run_config=run_config,
            checkpoint_dir=checkpoint_dir,
            note=note,
        )


def _scalars(config: ConfigSource | None) -> UserConfig:
    if not isinstance(config, Mapping):
        return {}
    return {k: v for k, v in config.items() if isinstance(v, bool | int | float | str)}
