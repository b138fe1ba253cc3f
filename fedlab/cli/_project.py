"""An app project on disk: its ``[tool.fedlab]`` table in ``pyproject.toml``.

::

    [tool.fedlab]
    clientapp = "myapp.client_app:app"
    serverapp = "myapp.server_app:app"
    default-federation = "local-simulation"      # optional; else the first federation

    [tool.fedlab.config]                         # the run config (context.run_config)
    num-server-rounds = 3

    [tool.fedlab.federations.local-simulation]
    simulation = { num-clients = 10 }            # a simulation in this process

    [tool.fedlab.federations.parallel]           # clients in 4 worker processes
    simulation = { num-clients = 100, backend = "processes", max-workers = 4 }

    [tool.fedlab.federations.ray-cluster]        # clients in actors of a Ray cluster
    simulation = { num-clients = 1000, backend = "ray", ray-address = "10.0.0.5:6379", num-cpus = 1 }

    [tool.fedlab.federations.remote]
    address = "127.0.0.1:9093"                   # a SuperLink's Control API
    insecure = true
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedlab.context import UserConfig
from fedlab.errors import FederationError
from fedlab.simulation.backend import BACKENDS, Backend, make_backend

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["DEFAULT_ADDRESS", "FederationSpec", "Project", "load_project"]

#: Where ``fedlab ls/log/stop`` look for a SuperLink when nothing else says.
DEFAULT_ADDRESS = "127.0.0.1:9093"


@dataclass(frozen=True)
class FederationSpec:
    """Where to run: a simulation with ``num_clients``, or a SuperLink at ``address``."""

    name: str
    address: str | None = None
    num_clients: int = 10
    insecure: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_simulation(self) -> bool:
        """True when the federation runs in this process."""
        return self.address is None

    def backend(self) -> str | Backend:
        """The simulation backend the options ask for (``inline`` by default)."""
        name = str(self.options.get("backend", "inline"))
        workers = self.options.get("max-workers")
        if name != "ray":
            return make_backend(name, None if workers is None else int(workers))
        from fedlab.simulation.ray_backend import RayBackend

        address = self.options.get("ray-address")
        return RayBackend(
            address=None if address is None else str(address),
            num_cpus=float(self.options.get("num-cpus", 1)),
            num_gpus=float(self.options.get("num-gpus", 0)),
            max_workers=None if workers is None else int(workers),
        )


@dataclass(frozen=True)
class Project:
    """An app project: its directory, apps, run config and federations."""

    directory: Path
    clientapp: str
    serverapp: str | None
    config: UserConfig
    federations: Mapping[str, FederationSpec]
    default_federation: str | None
    #: True for a Flower app project (``[tool.flwr.app]``), run with the compatibility layer.
    flower: bool = False

    def federation(self, name: str | None) -> FederationSpec:
        """Return the federation called ``name`` (default: the project's default)."""
        chosen = name or self.default_federation or next(iter(self.federations), None)
        if chosen is None:
            raise FederationError(
                f"{self.directory / 'pyproject.toml'} defines no federation; add e.g. "
                "[tool.fedlab.federations.local-simulation] with simulation = { num-clients = 10 }."
            )
        if chosen not in self.federations:
            known = ", ".join(self.federations) or "none"
            raise FederationError(
                f"No federation named {chosen!r} in the project (defined: {known})."
            )
        return self.federations[chosen]


def load_project(directory: str | Path) -> Project:
    """Read ``directory/pyproject.toml``; raise FederationError naming what is missing.

    Commands read projects through :func:`fedlab.cli._app_project.load_app_project`, which
    also reads Flower app projects.
    """
    root = Path(directory).resolve()
    path = root / "pyproject.toml"
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FederationError(
            f"{root} has no pyproject.toml; run `fedlab new NAME` to create an app project, "
            "or pass the project's directory."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise FederationError(f"{path} is not valid TOML: {exc}") from None
    table = data.get("tool", {}).get("fedlab")
    if not isinstance(table, dict) or not isinstance(table.get("clientapp"), str):
        raise FederationError(
            f'{path} has no [tool.fedlab] table with clientapp = "package.module:app"; '
            "see `fedlab new` for a complete example (a Flower project has [tool.flwr.app] instead)."
        )
    config = table.get("config", {})
    if not isinstance(config, dict) or not all(
        isinstance(v, bool | int | float | str) for v in config.values()
    ):
        raise FederationError(
            f"[tool.fedlab.config] in {path} may hold only bool, int, float and str values."
        )
    federations = {
        name: _federation(name, spec, path) for name, spec in table.get("federations", {}).items()
    }
    serverapp = table.get("serverapp")
    return Project(
        directory=root,
        clientapp=table["clientapp"],
        serverapp=serverapp if isinstance(serverapp, str) else None,
        config=dict(config),
        federations=federations,
        default_federation=table.get("default-federation"),
    )


def _federation(name: str, spec: object, path: Path) -> FederationSpec:
    if not isinstance(spec, dict):
        raise FederationError(f"[tool.fedlab.federations.{name}] in {path} must be a table.")
    simulation = spec.get("simulation")
    if simulation is not None:
        clients = simulation.get("num-clients", 10) if isinstance(simulation, dict) else None
        if not isinstance(clients, int) or isinstance(clients, bool) or clients < 1:
            raise FederationError(
                f"Federation {name!r} in {path}: write simulation = {{ num-clients = 10 }}."
            )
        backend = simulation.get("backend", "inline")
        if backend not in BACKENDS:
            raise FederationError(
                f"Federation {name!r} in {path}: backend = {backend!r} is not one of "
                f"{', '.join(map(repr, BACKENDS))}."
            )
        return FederationSpec(name, num_clients=clients, options=simulation)
    address = spec.get("address")
    if not isinstance(address, str):
        raise FederationError(
            f'Federation {name!r} in {path} needs address = "host:port" (a SuperLink\'s Control '
            "API) or simulation = { num-clients = N }."
        )
    return FederationSpec(
        name, address=address, insecure=bool(spec.get("insecure", False)), options=spec
    )
