"""A Flower app project: ``[tool.flwr.app]`` in ``pyproject.toml``, read as Flower 1.42 reads it.

::

    [tool.flwr.app]
    publisher = "alice"

    [tool.flwr.app.components]
    serverapp = "myapp.server_app:app"
    clientapp = "myapp.client_app:app"

    [tool.flwr.app.config]                 # the run config; nested tables become dotted keys
    num-server-rounds = 3

    [tool.flwr.federations]                # the older place for connections, still read
    default = "local-simulation"

    [tool.flwr.federations.local-simulation]
    options.num-supernodes = 10

Flower 1.42 keeps its SuperLink connections in ``$FLWR_HOME/config.toml`` (default
``~/.flwr/config.toml``) as ``[superlink.NAME]`` tables with ``address``, ``insecure``,
``root-certificates`` and, for a simulation, ``address = ":local:"`` with ``options.*``; its
``[superlink] default`` names the one used when none is given. A project's own
``[tool.flwr.federations]`` are read as well and win over connections of the same name (Flower
moves them into its config file; fedlab reads them where they are and changes no file). Without
any, the federation is Flower's default: ``local``, a simulation with 2 SuperNodes.

A simulation runs in this process on fedlab's inline backend: Flower's ``backend`` and
``client-resources`` options are accepted and do not change the results.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fedlab.cli._project import FederationSpec, Project
from fedlab.cli._run_config import flatten_config, parse_run_config
from fedlab.errors import FederationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "FEDERATION_CONFIG_KEYS",
    "apply_federation_config",
    "check_run_config",
    "flower_home",
    "is_flower_project",
    "load_flower_project",
]

#: Where a simulation runs in Flower's connection files (``address`` of a local SuperLink).
_LOCAL = (":local:", ":local-in-memory:")

#: Flower's number of SuperNodes when a simulation does not say.
_DEFAULT_SUPERNODES = 2

#: The keys ``--federation-config`` takes (Flower 1.42's simulation settings).
FEDERATION_CONFIG_KEYS = (
    "num-supernodes",
    "backend",
    "verbose",
    "client-resources-num-cpus",
    "client-resources-num-gpus",
    "init-args-num-cpus",
    "init-args-num-gpus",
    "init-args-logging-level",
    "init-args-log-to-driver",
)


#: The ``options.*`` a simulation connection may set, flattened with ``-``.
_OPTION_KEYS = (
    "num-supernodes",
    "verbose",
    "backend-name",
    "backend-client-resources-num-cpus",
    "backend-client-resources-num-gpus",
    "backend-init-args-num-cpus",
    "backend-init-args-num-gpus",
    "backend-init-args-logging-level",
    "backend-init-args-log-to-driver",
)


def is_flower_project(data: Mapping[str, Any]) -> bool:
    """True when a parsed ``pyproject.toml`` declares a Flower app (``[tool.flwr.app]``)."""
    tool = data.get("tool", {})
    flwr = tool.get("flwr") if isinstance(tool, dict) else None
    return isinstance(flwr, dict) and isinstance(flwr.get("app"), dict)


def flower_home() -> Path:
    """Flower's configuration directory: ``$FLWR_HOME``, else ``~/.flwr``."""
    home = os.environ.get("FLWR_HOME")
    return Path(home) if home else Path.home() / ".flwr"


def load_flower_project(root: Path, data: Mapping[str, Any]) -> Project:
    """Build the :class:`Project` a Flower ``pyproject.toml`` (parsed as ``data``) describes."""
    path = root / "pyproject.toml"
    app = data["tool"]["flwr"]["app"]
    components = app.get("components")
    if not isinstance(components, dict) or not isinstance(components.get("clientapp"), str):
        raise FederationError(
            f"{path} has [tool.flwr.app] but no [tool.flwr.app.components] with clientapp = "
            '"package.client_app:app" (and serverapp = "package.server_app:app").'
        )
    serverapp = components.get("serverapp")
    table = app.get("config", {})
    if not isinstance(table, dict):
        raise FederationError(f"[tool.flwr.app.config] in {path} must be a table of values.")
    config = flatten_config(table, f"[tool.flwr.app.config] in {path}")
    federations, default = _connections(flower_home() / "config.toml")
    legacy = data["tool"]["flwr"].get("federations", {})
    if not isinstance(legacy, dict):
        raise FederationError(f"[tool.flwr.federations] in {path} must be a table of tables.")
    own, own_default = _federations(legacy, path, root)
    federations.update(own)
    default = own_default if own_default in federations else default
    if not federations:
        federations["local"] = FederationSpec("local", num_clients=_DEFAULT_SUPERNODES)
        default = "local"
    return Project(
        directory=root,
        clientapp=components["clientapp"],
        serverapp=serverapp if isinstance(serverapp, str) else None,
        config=config,
        federations=federations,
        default_federation=default,
        flower=True,
    )


def check_run_config(project: Project, values: Sequence[str]) -> dict[str, Any]:
    """Parse ``--run-config`` as Flower does: each key must exist in the project's config."""
    overrides = parse_run_config(values, None)
    unknown = [key for key in overrides if key not in project.config]
    if unknown:
        known = ", ".join(project.config) or "none"
        raise FederationError(
            f"--run-config sets {', '.join(map(repr, unknown))}, which [tool.flwr.app.config] of "
            f"{project.directory / 'pyproject.toml'} does not define (defined: {known}); add it "
            "there first or fix its name."
        )
    return overrides


def apply_federation_config(federation: FederationSpec, values: Sequence[str]) -> FederationSpec:
    """``--federation-config "num-supernodes=10 ..."`` applied to a simulation federation."""
    if not values:
        return federation
    overrides = parse_run_config(values, None)
    unknown = [key for key in overrides if key.replace("_", "-") not in FEDERATION_CONFIG_KEYS]
    if unknown:
        raise FederationError(
            f"--federation-config does not know {', '.join(map(repr, unknown))}; it takes "
            f"{', '.join(FEDERATION_CONFIG_KEYS)} (e.g. --federation-config num-supernodes=10)."
        )
    if not federation.is_simulation:
        raise FederationError(
            f"--federation-config sets a simulation's options, but {federation.name!r} is the "
            f"SuperLink at {federation.address}; drop --federation-config or pick a simulation."
        )
    settings = dict(federation.options.get("flower", {}))
    settings.update({key.replace("_", "-"): value for key, value in overrides.items()})
    clients = _supernodes(
        settings.get("num-supernodes"), federation.num_clients, "--federation-config"
    )
    return FederationSpec(federation.name, num_clients=clients, options={"flower": settings})


def _connections(path: Path) -> tuple[dict[str, FederationSpec], str | None]:
    """The ``[superlink.*]`` connections of Flower's config file (none when it is missing)."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}, None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise FederationError(f"Flower's configuration {path} cannot be read: {exc}") from None
    table = data.get("superlink", {})
    if not isinstance(table, dict):
        return {}, None
    tables = {name: spec for name, spec in table.items() if isinstance(spec, dict)}
    federations = {
        name: _federation(name, spec, path, path.parent)
        for name, spec in tables.items()
        if _usable(spec)
    }
    default = table.get("default")
    return federations, default if isinstance(default, str) else None


def _federations(
    table: Mapping[str, Any], path: Path, root: Path
) -> tuple[dict[str, FederationSpec], str | None]:
    federations: dict[str, FederationSpec] = {}
    for name, spec in table.items():
        if name == "default":
            continue
        if not isinstance(spec, dict):
            raise FederationError(f"[tool.flwr.federations.{name}] in {path} must be a table.")
        federations[name] = _federation(name, spec, path, root)
    default = table.get("default")
    return federations, default if isinstance(default, str) else None


def _usable(spec: Mapping[str, Any]) -> bool:
    """False for connections fedlab cannot reach (Flower's hosted SuperGrid over HTTP)."""
    address = spec.get("address")
    return not (isinstance(address, str) and address.startswith("api.flower.ai"))


def _federation(name: str, spec: Mapping[str, Any], path: Path, base: Path) -> FederationSpec:
    address = spec.get("address")
    options = spec.get("options", {})
    if not isinstance(options, dict):
        raise FederationError(f"options of federation {name!r} in {path} must be a table.")
    if address is None or address in _LOCAL:
        # Flower's options keep their own names under "flower", apart from fedlab's backend keys.
        flat = {
            key.replace(".", "-"): value
            for key, value in flatten_config(options, str(path)).items()
        }
        unknown = [key for key in flat if key not in _OPTION_KEYS]
        if unknown:
            raise FederationError(
                f"Federation {name!r} in {path} has unknown options {', '.join(unknown)}; a "
                "simulation takes options.num-supernodes, options.verbose, options.backend.name, "
                "options.backend.client-resources.num-cpus/num-gpus and "
                "options.backend.init-args.*."
            )
        clients = _supernodes(flat.get("num-supernodes"), _DEFAULT_SUPERNODES, f"{path} ({name})")
        return FederationSpec(name, num_clients=clients, options={"flower": flat})
    if not isinstance(address, str):
        raise FederationError(
            f'Federation {name!r} in {path}: address must be "host:port" (a SuperLink\'s Control '
            'API) or ":local:" for a simulation.'
        )
    settings: dict[str, Any] = {}
    certificates = spec.get("root-certificates")
    if isinstance(certificates, str):
        settings["root-cert"] = str((base / certificates).expanduser())
    return FederationSpec(
        name, address=address, insecure=bool(spec.get("insecure", False)), options=settings
    )


def _supernodes(value: object, default: int, origin: str) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise FederationError(
            f"{origin}: num-supernodes must be a whole number ≥ 1, got {value!r}; write e.g. "
            "num-supernodes = 10."
        )
    return value
