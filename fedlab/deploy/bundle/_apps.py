"""Turning an app (object or import path) into a manifest entry and the files it needs."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from fedlab.client import ClientApp
from fedlab.deploy.bundle._files import is_provided, package_files
from fedlab.deploy.import_path import import_object, parse_import_path
from fedlab.errors import BundleError
from fedlab.server import ServerApp

__all__ = ["app_entry", "check_entry", "find_import_path"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_entry(entry: object) -> tuple[str, str]:
    """Return (module, attr) of a manifest app entry, refusing malformed ones."""
    if not isinstance(entry, Mapping):
        raise BundleError(f"A bundle app entry must be an object, got {entry!r}.")
    module, attr = entry.get("module"), entry.get("attr")
    if not isinstance(module, str) or not isinstance(attr, str):
        raise BundleError(
            f"A bundle app entry needs string 'module' and 'attr', got {dict(entry)!r}."
        )
    return parse_import_path(f"{module}:{attr}")


def app_entry(
    app: object, kind: type[ClientApp | ServerApp], role: str
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Return the manifest entry for ``app`` and the files it ships."""
    if isinstance(app, str):
        module, attr = parse_import_path(app)
        _resolve(module, attr, kind)
        return _import_entry(module, attr)
    if not isinstance(app, kind):
        raise BundleError(
            f"{role} must be a {kind.__name__} or an import path 'package.module:attr', "
            f"got {type(app).__name__}."
        )
    found = find_import_path(app)
    if found is not None:
        return _import_entry(*found)
    from fedlab.deploy.bundle._capture import capture_app

    module, attr, files = capture_app(app)
    return {"module": module, "attr": attr, "source": "captured"}, files


def find_import_path(app: ClientApp | ServerApp) -> tuple[str, str] | None:
    """Return (module, attr) if ``app`` is bound at the top level of an importable module.

    Candidates are the modules that define the app's functions; ``__main__`` (a notebook
    or a script) never counts, since a node cannot import it.
    """
    for module_name in dict.fromkeys(_function_modules(app)):
        module = sys.modules.get(module_name)
        if module_name == "__main__" or module is None or getattr(module, "__spec__", None) is None:
            continue
        for name, value in vars(module).items():
            if value is app and _NAME.fullmatch(name):
                return module_name, name
    return None


def _function_modules(app: ClientApp | ServerApp) -> Iterator[str]:
    if isinstance(app, ServerApp):
        functions: list[object] = [app._main]
    else:
        functions = [route.handler for route in app._routes.values()] + [app._lifespan]
    for fn in functions:
        name = getattr(fn, "__module__", None)
        if isinstance(name, str):
            yield name


def _resolve(module: str, attr: str, kind: type[ClientApp | ServerApp]) -> None:
    try:
        value = import_object(f"{module}:{attr}", default=None)
    except ImportError as exc:
        raise BundleError(
            f"Cannot import {module!r} to bundle it ({exc}); run from the app project's "
            "directory, or pass project_dir=..."
        ) from exc
    if not isinstance(value, kind):
        found = "nothing" if value is None else f"a {type(value).__name__}"
        raise BundleError(f"{module}:{attr} is {found}, not a {kind.__name__}.")


def _import_entry(module: str, attr: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    files = {} if is_provided(module) else package_files(module)
    return {"module": module, "attr": attr, "source": "import"}, files
