"""A federation's settings as attributes over its :class:`~fedlab.run.RunSpec`.

:class:`~fedlab.Federation` keeps what it was given in one frozen spec and shows each
field as an attribute (``fed.num_clients``, ``fed.display``, ...). Assigning one, as
``fed.display = "plain"`` or ``Federation.resume`` taking over a checkpoint directory
does, replaces that field of the spec with :func:`dataclasses.replace` (not checked
again) for the runs that start later; a run in progress keeps the spec it started with.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

from fedlab.client import ClientApp
from fedlab.context import UserConfig
from fedlab.dashboard.display import Display
from fedlab.records import ArrayRecord
from fedlab.run.spec import CheckpointKeep, NodeConfigs, RunSpec
from fedlab.server import ServerApp
from fedlab.simulation import Backend
from fedlab.strategy import ConfigSource, EvaluateFn, Strategy
from fedlab.tracking import Logger

if TYPE_CHECKING:
    from fedlab.datasets import FederatedDataset

__all__ = ["Setting", "Settings"]

T = TypeVar("T")


class Setting(Generic[T]):
    """An attribute of :class:`Settings` that reads, and on assignment replaces, one spec field."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, settings: None, owner: type) -> Setting[T]: ...
    @overload
    def __get__(self, settings: Settings, owner: type) -> T: ...
    def __get__(self, settings: Settings | None, owner: type) -> Setting[T] | T:
        if settings is None:
            return self
        return cast(T, getattr(settings.spec, self.name))

    def __set__(self, settings: Settings, value: T) -> None:
        changes: dict[str, Any] = {self.name: value}  # the field's type is T, as declared
        settings._spec = dataclasses.replace(settings._spec, **changes)


class Settings:
    """What a federation runs, as attributes; the base of :class:`~fedlab.Federation`.

    Parameters
    ----------
    spec
        The checked and settled arguments, from :meth:`RunSpec.build`.

    Examples
    --------
    >>> import numpy as np, fedlab as fl
    >>> fed = fl.Federation(fl.ClientApp(), server_app=fl.ServerApp(), display="none")
    >>> fed.display = "plain"
    >>> fed.spec.display, fed.num_clients
    ('plain', 10)
    """

    def __init__(self, spec: RunSpec) -> None:
        self._spec = spec

    client_app: Setting[ClientApp] = Setting()
    strategy: Setting[Strategy | None] = Setting()
    server_app: Setting[ServerApp | None] = Setting()
    num_clients: Setting[int] = Setting()
    initial_arrays: Setting[ArrayRecord | None] = Setting()
    config: Setting[ConfigSource | None] = Setting()
    evaluate_config: Setting[ConfigSource | None] = Setting()
    evaluate_fn: Setting[EvaluateFn | None] = Setting()
    run_config: Setting[UserConfig] = Setting()
    dataset: Setting[FederatedDataset | None] = Setting()
    node_configs: Setting[NodeConfigs | None] = Setting()
    seed: Setting[int | None] = Setting()
    backend: Setting[str | Backend] = Setting()
    max_workers: Setting[int | None] = Setting()
    timeout: Setting[float | None] = Setting()
    display: Setting[Display] = Setting()
    checkpoint_dir: Setting[str | os.PathLike[str] | None] = Setting()
    checkpoint_keep: Setting[CheckpointKeep] = Setting()
    loggers: Setting[tuple[Logger, ...]] = Setting()
    devices: Setting[str | tuple[str, ...]] = Setting()
    #: What the run's first line adds, e.g. that federated evaluation is skipped.
    note: Setting[str] = Setting()

    @property
    def spec(self) -> RunSpec:
        """The settings as one frozen :class:`~fedlab.run.RunSpec`, as the next run reads them."""
        return self._spec
