"""The import hook: ``import flwr...`` and ``import flwr_datasets...`` served by fedlab.

:func:`enable` puts a finder first on ``sys.meta_path``. It maps ``flwr``,
``flwr.<...>``, ``flwr_datasets`` and ``flwr_datasets.<...>`` to the modules of
``fedlab.compat.flower.flwr`` and ``fedlab.compat.flower.flwr_datasets``; the module
object is shared, so ``flwr.app.Message is fedlab.compat.flower.flwr.app.Message``. Being
first, it wins over a real Flower installed in the same environment, and modules of a
real Flower imported before :func:`enable` are dropped from ``sys.modules``.
A module Flower has but the layer does not fails to import with a
:class:`~fedlab.compat.flower.FlowerCompatError` naming the nearest supported module.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import pkgutil
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType

from fedlab.compat.flower.error import FlowerCompatError

__all__ = ["disable", "enable", "enabled", "is_enabled", "supported_modules"]

_TOP_LEVEL = ("flwr", "flwr_datasets")
_HOME = "fedlab.compat.flower"
_LOCK = threading.Lock()

#: Modules Flower has that the layer does not serve, with what to use instead.
_MODULE_HINTS = {
    "flwr.client": "Flower's legacy client API (NumPyClient, start_client) is not supported; "
    "write a Message-API app with flwr.clientapp.ClientApp and @app.train().",
    "flwr.server": "Flower's legacy server API (start_server, ServerConfig, legacy strategies) "
    "is not supported; use flwr.serverapp.ServerApp with @app.main() and "
    "flwr.serverapp.strategy.",
    "flwr.compat": "Flower's legacy compatibility API is not supported; use flwr.app records.",
}


def _is_flower(fullname: str) -> bool:
    return any(fullname == top or fullname.startswith(top + ".") for top in _TOP_LEVEL)


def supported_modules() -> list[str]:
    """The Flower module names the layer serves, e.g. ``flwr.app``, sorted."""
    names = []
    for top in _TOP_LEVEL:
        package = importlib.import_module(f"{_HOME}.{top}")
        names.append(top)
        names.extend(
            info.name.removeprefix(_HOME + ".")
            for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
        )
    return sorted(names)


class _AliasLoader(importlib.abc.Loader):
    """Loads a Flower name as the layer's module of the same shape (the same object)."""

    def __init__(self, target: str) -> None:
        self._target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self._target)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the layer's module was executed when it was imported."""


class _FlowerFinder(importlib.abc.MetaPathFinder):
    """Finds ``flwr``/``flwr_datasets`` modules in the compatibility layer."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not _is_flower(fullname):
            return None
        home = f"{_HOME}.{fullname}"
        if importlib.util.find_spec(home) is None:
            raise _missing_module(fullname)
        return importlib.util.spec_from_loader(fullname, _AliasLoader(home))


def _missing_module(fullname: str) -> FlowerCompatError:
    head = f"{fullname} is not supported by fedlab's Flower compatibility layer"
    for module, hint in _MODULE_HINTS.items():
        if fullname == module or fullname.startswith(module + "."):
            return FlowerCompatError(f"{head}: {hint}")
    known = supported_modules()
    parent = fullname.rpartition(".")[0]
    while parent and parent not in known:
        parent = parent.rpartition(".")[0]
    candidates = [m for m in known if m.startswith(parent + ".")] if parent else known
    import difflib

    close = difflib.get_close_matches(fullname, candidates or known, n=1, cutoff=0.0)
    return FlowerCompatError(
        f"{head}; the nearest supported module is {close[0] if close else 'flwr.app'}. "
        f"Supported: {', '.join(known)}."
    )


_FINDER = _FlowerFinder()


def _drop_flower_modules() -> None:
    for name in [n for n in sys.modules if _is_flower(n)]:
        del sys.modules[name]


def enable() -> None:
    """Serve ``import flwr...``/``import flwr_datasets...`` from fedlab in this process.

    Idempotent. Flower modules already imported (a real Flower, say) are dropped from
    ``sys.modules``, so later imports get the layer; objects made from them before stay
    what they were.

    Examples
    --------
    >>> from fedlab.compat import flower
    >>> flower.enable()
    >>> import flwr.app
    >>> flwr.app.ArrayRecord.__module__
    'fedlab.compat.flower.records'
    >>> flower.disable()
    """
    with _LOCK:
        if sys.meta_path and sys.meta_path[0] is _FINDER:
            return
        if _FINDER in sys.meta_path:
            sys.meta_path.remove(_FINDER)
        else:
            _drop_flower_modules()
        sys.meta_path.insert(0, _FINDER)
        importlib.invalidate_caches()


def disable() -> None:
    """Remove the hook; ``import flwr`` then finds a real Flower again, if one is installed.

    Idempotent. The layer's modules are dropped from the ``flwr`` names in ``sys.modules``.
    """
    with _LOCK:
        if _FINDER not in sys.meta_path:
            return
        sys.meta_path.remove(_FINDER)
        _drop_flower_modules()
        importlib.invalidate_caches()


def is_enabled() -> bool:
    """True while the hook is installed in this process."""
    return _FINDER in sys.meta_path


@contextmanager
def enabled() -> Iterator[None]:
    """Enable the hook for a ``with`` block; leave it as it was found afterwards.

    Examples
    --------
    >>> from fedlab.compat import flower
    >>> with flower.enabled():
    ...     from flwr.app import Message
    >>> flower.is_enabled()
    False
    """
    was = is_enabled()
    enable()
    try:
        yield
    finally:
        if not was:
            disable()
