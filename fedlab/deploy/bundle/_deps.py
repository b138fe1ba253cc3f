"""The user's own modules that a bundle's code imports, found by reading its import statements.

An app's module that imports a helper from its own folder (``import helpers`` beside
``client_app.py``) needs that file on the node too, so the bundle ships it, and whatever
of the user's it imports in turn. A module is the user's own when it is importable here
from a regular module or package (with ``__init__.py``) outside the Python installation
(neither the standard library nor site-packages) and belongs to no installed
distribution. Installed packages are never shipped.

The manifest records what was left out, so that a node missing a module can say why:
``requires`` maps each installed package the code imports to its distributions ("pip
install it on the SuperNode"), and ``not_shipped`` maps each of the user's modules that
was not captured to the reason.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import os
import site
import sys
import sysconfig
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fedlab.deploy.bundle._files import (
    installed_distributions,
    is_provided,
    package_files,
    top_level,
)
from fedlab.errors import BundleError

__all__ = ["Closure", "close_over_imports", "explain_missing"]


@dataclass
class Closure:
    """A bundle's files with the user's modules they import, and what was left out."""

    files: dict[str, bytes]
    requires: dict[str, list[str]] = field(default_factory=dict)
    not_shipped: dict[str, str] = field(default_factory=dict)


def close_over_imports(files: Mapping[str, bytes]) -> Closure:
    """Add to ``files`` the user's modules their import statements name, transitively."""
    closure = Closure(dict(files))
    distributions = installed_distributions()
    seen = {_top_of_path(path) for path in files}
    pending = [path for path in files if path.endswith(".py")]
    while pending:
        path = pending.pop()
        for name in sorted(_imported_tops(closure.files[path])):
            if name in seen:
                continue
            seen.add(name)
            new = _classify(name, distributions, closure)
            closure.files.update(new)
            pending += [p for p in new if p.endswith(".py")]
    _note_loaded_elsewhere(closure, distributions)
    return closure


def explain_missing(name: str, manifest: Mapping[str, object]) -> str:
    """Say why the module ``name`` is missing on this node, from what the manifest recorded."""
    top = top_level(name)
    requires = manifest.get("requires")
    not_shipped = manifest.get("not_shipped")
    files = manifest.get("files")
    if isinstance(requires, dict) and top in requires:
        dists = [d for d in requires[top] or () if isinstance(d, str)]
        known = f" (distribution {dists[0]!r})" if dists else ""
        command = f" (pip install {dists[0]})" if dists else ""
        return (
            f"{top!r} is an installed package{known} on the machine that built the bundle, and "
            f"this SuperNode lacks it: pip install it on the SuperNode{command}, in the "
            "environment the SuperNode runs in."
        )
    if isinstance(not_shipped, dict) and top in not_shipped:
        return (
            f"{top!r} is a file of your own on the machine that built the bundle, and it was "
            f"not captured into the bundle: {not_shipped[top]}"
        )
    if isinstance(files, dict) and any(_top_of_path(str(p)) == top for p in files):
        return (
            f"The bundle ships {top!r}, but not {name!r}: a bundle carries source files only "
            "(.py and small text files), so a compiled module must be installed on the node."
        )
    return (
        f"{top!r} is neither in the bundle nor installed on this SuperNode, and no import "
        "statement in the bundle's code names it. If it is an installed package, pip install "
        f"it on the SuperNode; if it is a file of your own, import it by name (import {top}) "
        "from the app's code, so that the bundle captures it."
    )


def _top_of_path(path: str) -> str:
    return path.split("/")[0].removesuffix(".py")


def _imported_tops(source: bytes) -> Iterator[str]:
    """Top-level names of the absolute imports anywhere in ``source`` (relative ones are inside)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return  # shipped as it is; importing it on the node reports the error
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (top_level(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield top_level(node.module)


def _classify(
    name: str, distributions: Mapping[str, list[str]], closure: Closure
) -> dict[str, bytes]:
    """Record ``name`` as installed or not shipped, or return its files to ship."""
    if is_provided(name):
        return {}
    if name in distributions:
        closure.requires[name] = sorted(set(distributions[name]))
        return {}
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return {}  # not importable here either: nothing is known about it
    if spec.origin is None and spec.submodule_search_locations:
        closure.not_shipped[name] = (
            "it is a folder without __init__.py (a namespace package), which is not shipped on "
            f"a guess (it may hold only data); add an __init__.py to {name}/ to have it shipped."
        )
        return {}
    if not spec.has_location:
        return {}  # built into this interpreter
    if any(_in_installation(Path(p)) for p in _locations(spec)):
        closure.requires[name] = []
        return {}
    try:
        return package_files(name)
    except BundleError as exc:
        closure.not_shipped[name] = str(exc)
        return {}


def _locations(spec: importlib.machinery.ModuleSpec) -> list[str]:
    return list(spec.submodule_search_locations or ()) or [str(spec.origin)]


def _note_loaded_elsewhere(closure: Closure, distributions: Mapping[str, list[str]]) -> None:
    """Record the user's modules loaded from the shipped code's folders but not shipped."""
    shipped = {_top_of_path(path) for path in closure.files}
    roots = {r for r in map(_shipped_root, shipped) if r is not None}
    for name, module in list(sys.modules.items()):
        if "." in name or name in shipped or name in closure.not_shipped:
            continue
        if is_provided(name) or name in distributions or name == "__main__":
            continue
        if _root(getattr(module, "__file__", None)) in roots:
            closure.not_shipped[name] = (
                "no import statement in the shipped code names it (it is imported "
                "dynamically, e.g. with importlib.import_module or __import__), so the bundle "
                f"could not see that the app needs it; add `import {name}` to the app's module, "
                "or move it into the app's package."
            )


def _shipped_root(name: str) -> Path | None:
    module = sys.modules.get(name)
    if module is not None:
        return _root(getattr(module, "__file__", None))
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return None if spec is None else _root(spec.origin)


def _root(origin: object) -> Path | None:
    """The folder a top-level module of the user's, from file ``origin``, is imported from."""
    if not isinstance(origin, str) or not os.path.isabs(origin):
        return None
    path = Path(os.path.realpath(origin))
    root = path.parent.parent if path.stem == "__init__" else path.parent
    return None if _in_installation(root) else root


def _in_installation(path: Path) -> bool:
    real = Path(os.path.realpath(path))
    return any(real == d or d in real.parents for d in _installation_dirs())


def _installation_dirs() -> set[Path]:
    paths = sysconfig.get_paths()
    dirs = [paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")]
    dirs += list(getattr(site, "getsitepackages", list)())
    user_site = getattr(site, "getusersitepackages", lambda: None)()
    dirs += [user_site] if isinstance(user_site, str) else []
    return {Path(os.path.realpath(d)) for d in dirs if d}
