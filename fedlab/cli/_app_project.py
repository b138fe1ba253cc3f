"""The project a command was pointed at: fedlab's ``[tool.fedlab]`` or a Flower app project."""

from __future__ import annotations

import sys
from pathlib import Path

from fedlab.cli._flower_project import is_flower_project, load_flower_project
from fedlab.cli._project import Project, load_project

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["load_app_project"]


def load_app_project(directory: str | Path) -> Project:
    """Read the project in ``directory``; ``[tool.flwr.app]`` without ``[tool.fedlab]`` is Flower's."""
    root = Path(directory).resolve()
    try:
        data = tomllib.loads((root / "pyproject.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return load_project(root)  # which says what is wrong with the file
    if "fedlab" not in data.get("tool", {}) and is_flower_project(data):
        return load_flower_project(root, data)
    return load_project(root)
