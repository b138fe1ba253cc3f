"""``fedlab new``: create an app project from a template shipped inside fedlab (offline)."""

from __future__ import annotations

import argparse
import keyword
import re
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from fedlab.cli._output import Output, add_format_option
from fedlab.errors import FederationError

if TYPE_CHECKING:
    from importlib.abc import Traversable

__all__ = ["TEMPLATES", "create_project", "register", "run_command"]

#: The templates, each a directory under ``fedlab/templates``.
TEMPLATES = ("jax", "keras", "numpy", "pytorch", "sklearn", "xgboost")
_SUFFIX = ".tmpl"
_PACKAGE_DIR = "__package__"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_\-]*")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``fedlab new`` to the CLI."""
    parser = commands.add_parser(
        "new",
        help="create an app project from a template (works offline)",
        description="Create an app project (pyproject.toml with [tool.fedlab], a ClientApp, "
        "a ServerApp and a task module) from a template shipped with fedlab.",
    )
    parser.add_argument("name", help="project name, e.g. my-app (the package becomes my_app)")
    parser.add_argument(
        "--template", "-t", choices=TEMPLATES, default="numpy", help="framework (default: numpy)"
    )
    parser.add_argument("--dir", default=".", help="where to create the project (default: here)")
    add_format_option(parser)
    parser.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Create the project and print what to do next."""
    out = Output(args.format)
    target = create_project(args.name, args.template, Path(args.dir))
    out.document({"success": True, "project": str(target), "template": args.template})
    out.say(f"Created [bold]{target}[/] from the [bold]{args.template}[/] template. Next:")
    out.say(f"  cd {target}\n  fedlab run .")
    return 0


def create_project(name: str, template: str, parent: Path) -> Path:
    """Write the project ``name`` from ``template`` under ``parent``; return its directory.

    Raises
    ------
    FederationError
        If the name is not usable as a project and package name, the template is unknown,
        or the directory already exists.
    """
    if _NAME.fullmatch(name) is None:
        raise FederationError(
            f"{name!r} is not a valid project name: start with a letter and use letters, digits, "
            "'-' and '_' only (e.g. my-app)."
        )
    package = name.lower().replace("-", "_")
    if keyword.iskeyword(package):
        raise FederationError(f"{name!r} is a Python keyword; choose another project name.")
    if template not in TEMPLATES:
        raise FederationError(
            f"Unknown template {template!r}; choose one of {', '.join(TEMPLATES)}."
        )
    target = parent / name
    if target.exists():
        raise FederationError(f"{target} already exists; choose another name or remove it.")
    from fedlab.version import __version__

    values = {"{{project}}": name, "{{package}}": package, "{{fedlab_version}}": __version__}
    _copy(files("fedlab").joinpath("templates").joinpath(template), target, package, values)
    return target


def _copy(source: Traversable, target: Path, package: str, values: dict[str, str]) -> None:
    target.mkdir(parents=True)
    for entry in sorted(source.iterdir(), key=lambda e: e.name):
        name = package if entry.name == _PACKAGE_DIR else entry.name.removesuffix(_SUFFIX)
        if entry.is_dir():
            if entry.name != "__pycache__":
                _copy(entry, target / name, package, values)
            continue
        text = entry.read_text(encoding="utf-8")
        for placeholder, value in values.items():
            text = text.replace(placeholder, value)
        (target / name).write_text(text, encoding="utf-8")
