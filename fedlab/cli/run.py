"""``fedlab run``: run an app project in a local simulation or on a SuperLink."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from fedlab.cli._app_project import load_app_project
from fedlab.cli._flower_project import apply_federation_config, check_run_config
from fedlab.cli._flower_run import enable_flower, run_flower_script
from fedlab.cli._follow import follow_run
from fedlab.cli._output import Output, add_format_option
from fedlab.cli._project import FederationSpec, Project
from fedlab.cli._run_config import parse_run_config
from fedlab.cli._target import add_credential_arguments, client_security
from fedlab.context import UserConfig
from fedlab.devices import Devices, check_devices
from fedlab.errors import FederationError
from fedlab.server import Result

__all__ = ["register", "run_command"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``fedlab run`` to the CLI."""
    parser = commands.add_parser(
        "run",
        help="run an app project in a simulation or on a SuperLink",
        description="Run the app project in APP (default: here) on FEDERATION, one of the "
        "[tool.fedlab.federations] in its pyproject.toml (default: its default-federation). "
        "A simulation runs in this process; a federation with an address is sent to that "
        "SuperLink as a signed-or-unsigned app bundle and followed until it finishes.",
    )
    parser.add_argument(
        "app",
        nargs="?",
        default=".",
        help="app project directory (default: .), or a Flower script that calls run_simulation",
    )
    parser.add_argument("federation", nargs="?", help="federation name (default: the project's)")
    parser.add_argument(
        "--run-config",
        nargs="+",
        action="extend",
        default=[],
        metavar="CONFIG",
        help="override [tool.fedlab.config]: space-separated key=value pairs with TOML values, "
        "or a .toml file; repeatable, later values win. E.g. --run-config "
        '"num-server-rounds=5 learning-rate=0.05" --run-config \'optimizer="adam"\'',
    )
    parser.add_argument(
        "--federation-config",
        nargs="+",
        action="extend",
        default=[],
        metavar="CONFIG",
        help="Flower projects: override the simulation's settings, e.g. --federation-config "
        '"num-supernodes=10"',
    )
    parser.add_argument(
        "--stream",
        action="store_true",
        help="accepted for Flower's `flwr run --stream`; fedlab always shows the run as it goes",
    )
    parser.add_argument(
        "--superlink",
        metavar="HOST:PORT",
        help="run on the SuperLink whose Control API is at HOST:PORT instead of FEDERATION's "
        "address (FEDERATION's other settings still apply)",
    )
    parser.add_argument(
        "--devices",
        metavar="DEVICES",
        help='a simulation\'s client devices: "auto" (default; every visible GPU, else cpu), '
        '"cpu", or devices separated by commas, e.g. cuda:0,cuda:1 (client i gets the '
        "i-th modulo their number); overrides the federation's devices = ...",
    )
    add_credential_arguments(parser)
    parser.add_argument(
        "--detach", action="store_true", help="on a SuperLink: print the run id and return at once"
    )
    parser.add_argument(
        "--signing-key",
        metavar="PEM",
        help="sign the app bundle with this Ed25519 private key file (`fedlab keys NAME`); "
        "SuperNodes run only code signed by a key they trust",
    )
    add_format_option(parser)
    parser.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Run the project; 0 when the run completed, 1 when it failed.

    A simulation in which no round aggregated anything (every client failed or was
    refused) fails: its error names the first failure.
    """
    out = Output(args.format)
    if args.app.endswith(".py") and Path(args.app).is_file():
        return run_flower_script(Path(args.app), args, out)
    project = load_app_project(args.app)
    federation = _federation(project, args)
    if project.flower:
        federation = apply_federation_config(federation, args.federation_config)
        config = {**project.config, **check_run_config(project, args.run_config)}
        enable_flower(out)
    elif args.federation_config:
        raise FederationError(
            "--federation-config is for Flower projects ([tool.flwr.app]); this project's "
            "federations are set in [tool.fedlab.federations] of its pyproject.toml."
        )
    else:
        config = {**project.config, **parse_run_config(args.run_config)}
    if federation.is_simulation:
        if args.devices is not None:
            federation = replace(federation, options={**federation.options, "devices": args.devices})
        return _simulate(project, federation, config, out)
    return _submit(project, federation, config, args, out)


def _federation(project: Project, args: argparse.Namespace) -> FederationSpec:
    """The federation to run on: FEDERATION (or the default), sent to --superlink if given."""
    if not args.superlink:
        return project.federation(args.federation)
    named = project.federation(args.federation) if args.federation or project.federations else None
    if named is None or named.is_simulation:  # a simulation's settings mean nothing there
        name = "superlink" if named is None else named.name
        return FederationSpec(name, address=args.superlink, insecure=args.insecure)
    return FederationSpec(
        named.name,
        address=args.superlink,
        insecure=args.insecure or named.insecure,
        options=named.options,
    )


def _simulate(project: Project, federation: FederationSpec, config: UserConfig, out: Output) -> int:
    from fedlab.federation import Federation
    from fedlab.format import format_rounds

    if project.serverapp is None:
        raise FederationError(
            'A simulation needs the project\'s ServerApp: add serverapp = "package.server_app:app" '
            "to [tool.fedlab] in pyproject.toml."
        )
    client_app, server_app = (
        _import(project, path) for path in (project.clientapp, project.serverapp)
    )
    rounds = config.get("num-server-rounds", 3)
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 0:
        raise FederationError(
            f"num-server-rounds must be a whole number of rounds, got {rounds!r}; write e.g. "
            "--run-config num-server-rounds=5."
        )
    fed = Federation(
        client_app,  # type: ignore[arg-type]
        server_app=server_app,  # type: ignore[arg-type]
        num_clients=federation.num_clients,
        run_config=config,
        seed=federation.options.get("seed"),
        backend=federation.backend(),
        display="none" if out.json else "auto",
        devices=_devices(federation.options.get("devices", "auto")),
    )
    out.say(
        f"Simulating [bold]{project.directory.name}[/] on [bold]{federation.name}[/] "
        f"({federation.num_clients} clients)"
    )
    result = fed.run(rounds=rounds)
    out.document(
        {"success": True, "federation": federation.name, "mode": "simulation", **_summary(result)}
    )
    idle = _not_aggregated(result)
    note = f"; {format_rounds(idle)} aggregated nothing" if idle else ""
    out.say(f"Finished {result.rounds_completed} round(s){note}.")
    return 0


def _submit(
    project: Project,
    federation: FederationSpec,
    config: UserConfig,
    args: argparse.Namespace,
    out: Output,
) -> int:
    from fedlab.deploy import ControlClient, build_bundle

    assert federation.address is not None
    security = client_security(args, federation, project.directory)
    if project.serverapp is None:
        raise FederationError(
            "Running on a SuperLink needs the project's ServerApp: add serverapp = "
            '"package.server_app:app" to [tool.fedlab] in pyproject.toml.'
        )
    key_path = args.signing_key or federation.options.get("signing-key")
    key = _signing_key(project.directory / str(key_path)) if key_path else None
    bundle = build_bundle(
        project.clientapp,
        project.serverapp,
        run_config=config,
        signing_key=key,
        project_dir=project.directory,
    )
    with ControlClient(federation.address, security=security) as control:
        run_id = control.create_run(bundle, config, attached=False)
        if args.detach:
            out.document(
                {
                    "success": True,
                    "run-id": run_id,
                    "federation": federation.name,
                    "superlink": federation.address,
                }
            )
            out.say(
                f"Started run [bold]{run_id}[/] on {federation.address}; follow it with "
                f"`fedlab log {run_id} {_target(federation, args, project)}`."
            )
            return 0
        return _follow(control, run_id, federation, out, _target(federation, args, project))


def _target(federation: FederationSpec, args: argparse.Namespace, project: Project) -> str:
    """The options that reach this SuperLink again from any directory (never a token itself)."""
    parts = [f"--superlink {federation.address}"]
    if args.insecure or federation.insecure:
        return " ".join([*parts, "--insecure"])
    for flag, option in (("root_cert", "root-cert"), ("token_file", "token-file")):
        value = getattr(args, flag) or federation.options.get(option)
        if value:
            base = Path.cwd() if getattr(args, flag) else project.directory
            parts.append(f"--{option} {(base / str(value)).resolve()}")
    return " ".join(parts)


def _follow(control: Any, run_id: int, federation: FederationSpec, out: Output, target: str) -> int:
    out.say(f"Started run [bold]{run_id}[/] on {federation.address} ({federation.name}).")
    try:
        history, finished = follow_run(control, run_id, out, json_lines=False)
    except KeyboardInterrupt:
        out.say(
            f"Stopped following; the run goes on. `fedlab log {run_id} {target}` resumes, "
            f"`fedlab stop {run_id} {target}` stops it."
        )
        return 130
    error = None if finished is None else finished.error
    completed = None if finished is None else finished.rounds_completed
    out.document(
        {
            "success": finished is not None and error is None,
            "run-id": run_id,
            "federation": federation.name,
            "rounds_completed": completed,
            "error": error,
            "rounds": history.rounds_completed,
        }
    )
    if error is not None:
        return out.error(f"Run {run_id} failed: {error}")
    out.say(f"Run {run_id} finished after {completed} round(s).")
    return 0


def _import(project: Project, path: str) -> object:
    from fedlab.deploy.import_path import import_object

    try:
        return import_object(path, directory=str(project.directory))
    except (ImportError, AttributeError) as exc:
        raise FederationError(f"Cannot load {path} from {project.directory}: {exc}") from exc


def _signing_key(path: Path) -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise FederationError(f"Cannot read the signing key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise FederationError(
            f"{path} holds a {type(key).__name__}; bundles are signed with Ed25519 keys."
        )
    return key


def _summary(result: Result) -> dict[str, Any]:
    def table(metrics: dict[int, Any]) -> dict[str, dict[str, Any]]:
        return {str(r): dict(m) for r, m in sorted(metrics.items())}

    return {
        "rounds_completed": result.rounds_completed,
        "rounds_not_aggregated": _not_aggregated(result),
        "stopped_early": result.stopped_early,
        "train_metrics": table(result.train_metrics_clientapp),
        "evaluate_metrics": table(result.evaluate_metrics_clientapp),
        "server_metrics": table(result.evaluate_metrics_serverapp),
    }


def _not_aggregated(result: Result) -> list[int]:
    """The rounds whose aggregation kept the global arrays unchanged."""
    rows = result.history.rounds if result.history is not None else []
    return [row["round"] for row in rows if row["aggregated"] is False]


def _devices(option: object) -> Devices:
    """A ``devices`` option (or ``--devices``) as ``Federation`` takes it: a string or a list.

    A string is split at commas (``"cuda:0,cuda:1"``); a TOML list is checked as it is.
    """
    if isinstance(option, str):
        return option if "," not in option else [d.strip() for d in option.split(",") if d.strip()]
    return check_devices(option) or "auto"
