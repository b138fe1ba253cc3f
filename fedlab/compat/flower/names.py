"""How a module of the layer answers a name it does not define.

Each ``flwr...`` module of the layer sets ``__getattr__ = module_getattr(__name__, __all__)``:
a submodule of the layer is imported on first use (``import flwr`` then
``flwr.serverapp.strategy.FedAvg``), a name the layer lacks raises a
:class:`~fedlab.compat.flower.FlowerCompatError` naming the nearest one it has.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterable, Mapping

from fedlab.compat.flower.error import missing_attribute

__all__ = ["module_getattr"]


def module_getattr(
    module: str, known: Iterable[str], hints: Mapping[str, str] | None = None
) -> Callable[[str], object]:
    """Return the ``__getattr__`` of the layer module ``module`` exporting ``known``.

    ``hints`` maps names Flower has but the layer does not to what to use instead.
    """
    names = list(known)

    def __getattr__(name: str) -> object:
        if not name.startswith("_") and _is_submodule(module, name):
            return importlib.import_module(f"{module}.{name}")
        raise missing_attribute(module, name, names, hints)

    return __getattr__


def _is_submodule(module: str, name: str) -> bool:
    try:
        return importlib.util.find_spec(f"{module}.{name}") is not None
    except ModuleNotFoundError:  # ``module`` is not a package
        return False
