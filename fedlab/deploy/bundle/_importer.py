"""Importing a bundle's code: extract it to a private directory and import from there.

The code is written to disk (not imported from memory) so that user code which reads
files beside its modules (``Path(__file__).parent / "config.json"``) or uses
``importlib.resources`` behaves as it does at home.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.abc
import importlib.machinery
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

from fedlab.deploy.import_path import import_object
from fedlab.errors import BundleError

__all__ = ["import_attribute", "write_files"]

_MISSING = object()

_lock = threading.Lock()
_finders: dict[Path, _BundleFinder] = {}
_temporary: list[Path] = []


class _BundleFinder(importlib.abc.MetaPathFinder):
    """Finds the bundle's top-level packages in its directory, after everything else.

    It sits behind the standard finders in ``sys.meta_path``, so a name the standard
    library, site-packages or the process's own import path provides is always found
    there: a bundle shipping ``json.py`` (or ``fedlab/``, ``numpy/``) cannot shadow them.
    """

    def __init__(self, root: Path, names: frozenset[str]) -> None:
        self.root = root
        self.names = names

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        # Submodules are found through their package's __path__, which points here.
        if fullname not in self.names:
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, [str(self.root)])


def write_files(files: Mapping[str, bytes], directory: Path | None) -> Path:
    """Write ``files`` under ``directory`` (a new private temporary one if None); return it."""
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="fedlab-bundle-"))
        with _lock:
            if not _temporary:
                atexit.register(_remove_temporary)
            _temporary.append(directory)
    root = directory.resolve()
    for relative, content in files.items():
        target = (root / relative).resolve()
        if root not in target.parents:  # paths were checked already; this is the last guard
            raise BundleError(f"Refusing to write {relative!r} outside {root}.")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return root


def import_attribute(
    root: Path | None,
    top_names: Iterable[str],
    module: str,
    attr: str,
    explain_missing: Callable[[str], str] | None = None,
) -> object:
    """Import ``module`` (from ``root`` when it is one of ``top_names``) and return ``attr``.

    ``explain_missing(name)`` says why a module the code imports is missing on this node.
    """
    names = frozenset(top_names)
    if root is not None and names:
        _install_finder(root, names)
    try:
        value = import_object(f"{module}:{attr}", default=_MISSING)
    except ModuleNotFoundError as exc:
        if explain_missing is None or not exc.name:
            raise BundleError(
                f"Importing {module!r} from the bundle failed with ModuleNotFoundError: {exc}. "
                "Check that every package the app imports is installed on this node."
            ) from exc
        raise BundleError(
            f"Importing {module!r} from the bundle failed with ModuleNotFoundError: {exc}. "
            f"{explain_missing(exc.name)}"
        ) from exc
    except Exception as exc:
        raise BundleError(
            f"Importing {module!r} from the bundle failed with {type(exc).__name__}: {exc}. "
            "Check that every package the app imports is installed on this node."
        ) from exc
    if value is _MISSING:
        raise BundleError(f"The bundle's module {module!r} has no attribute {attr!r}.")
    return value


def _install_finder(root: Path, names: frozenset[str]) -> None:
    with _lock:
        finder = _finders.get(root) or _BundleFinder(root, names)
        _finders[root] = finder
        # A module of the same name that another bundle loaded earlier must not stand in
        # for this bundle's code; modules from anywhere else are never unloaded.
        others = [r for r in _finders if r != root]
        for name in list(sys.modules):
            module = sys.modules[name]
            if name.partition(".")[0] in names and any(_inside(module, r) for r in others):
                del sys.modules[name]
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
        # Behind the standard finders, ahead of the finders of bundles loaded before.
        bundles = [i for i, f in enumerate(sys.meta_path) if isinstance(f, _BundleFinder)]
        sys.meta_path.insert(bundles[0] if bundles else len(sys.meta_path), finder)
        importlib.invalidate_caches()


def _inside(module: ModuleType | None, root: Path) -> bool:
    origin = getattr(module, "__file__", None)
    return origin is not None and Path(os.path.realpath(origin)).is_relative_to(root)


def _remove_temporary() -> None:
    for directory in _temporary:
        shutil.rmtree(directory, ignore_errors=True)
