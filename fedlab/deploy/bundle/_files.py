"""Which source files a bundle ships for a module, and which modules it never ships."""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from fedlab.errors import BundleError

__all__ = [
    "SHIPPED_SUFFIXES",
    "installed_distributions",
    "is_installed",
    "is_provided",
    "package_files",
    "top_level",
]

#: File types copied from an app's package: code and small text configuration, never data.
SHIPPED_SUFFIXES = (".py", ".pyi", ".json", ".toml", ".yaml", ".yml", ".cfg", ".ini", ".txt")
_SKIPPED_DIRS = ("__pycache__", "node_modules")
_MAX_PACKAGE_BYTES = 32 * 1024 * 1024


def top_level(module_name: str) -> str:
    """Return the top-level package of a dotted module name."""
    return module_name.partition(".")[0]


def is_provided(module_name: str) -> bool:
    """True for modules every node has: fedlab itself and the standard library.

    A bundle never ships them: a second copy of fedlab would make the node's own
    ``ClientApp`` and the bundle's two different classes.
    """
    top = top_level(module_name)
    return top == "fedlab" or top in sys.stdlib_module_names or top in sys.builtin_module_names


@functools.lru_cache(maxsize=1)
def installed_distributions() -> Mapping[str, list[str]]:
    """Top-level module names of the installed distributions, to their distribution names.

    Read once per process (it takes a while); a package installed later is still known as
    installed by where it lives (see :mod:`fedlab.deploy.bundle._deps`).
    """
    return MappingProxyType(dict(importlib.metadata.packages_distributions()))


def is_installed(module_name: str) -> bool:
    """True if the module's top-level package comes from an installed distribution."""
    return is_provided(module_name) or top_level(module_name) in installed_distributions()


def package_files(module_name: str) -> dict[str, bytes]:
    """Return the source files of the top-level package holding ``module_name``.

    Keys are POSIX paths relative to the directory the package is imported from (so
    ``pkg/__init__.py``, ``pkg/client_app.py``); a top-level plain module gives one file.

    Raises
    ------
    BundleError
        If the module cannot be found, is compiled (no source), or is too large.
    """
    top = top_level(module_name)
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError) as exc:
        raise BundleError(f"Cannot locate the module {top!r} to bundle it: {exc}") from None
    if spec is None:
        raise BundleError(
            f"No module named {top!r} is importable here; run from the project directory "
            "or install the app's package (pip install -e .)."
        )
    if spec.submodule_search_locations:
        files: dict[str, bytes] = {}
        for location in spec.submodule_search_locations:
            files.update(_walk(Path(location), top))
    elif spec.origin is not None and spec.origin.endswith(".py"):
        files = {f"{top}.py": Path(spec.origin).read_bytes()}
    else:
        raise BundleError(
            f"The module {top!r} has no Python source (it is {spec.origin or 'built in'}); "
            "a bundle ships source files only, so install it on every node instead."
        )
    size = sum(map(len, files.values()))
    if size > _MAX_PACKAGE_BYTES:
        raise BundleError(
            f"The package {top!r} holds {size / 1e6:.1f} MB of shippable files, above the "
            f"{_MAX_PACKAGE_BYTES / 1e6:.0f} MB limit; move data out of the package and load "
            "it at run time."
        )
    return files


def _walk(root: Path, prefix: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for directory, subdirs, names in os.walk(root):
        # Sorted and pruned in place, so the walk is deterministic and skips caches.
        subdirs[:] = sorted(
            d
            for d in subdirs
            if not d.startswith(".") and d not in _SKIPPED_DIRS and not d.endswith(".egg-info")
        )
        relative = Path(directory).relative_to(root)
        for name in sorted(names):
            if name.endswith(SHIPPED_SUFFIXES) or name == "py.typed":
                path = (Path(prefix) / relative / name).as_posix()
                files[path] = (Path(directory) / name).read_bytes()
    return files
