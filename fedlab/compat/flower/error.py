"""`FlowerCompatError`: a Flower name or argument the compatibility layer does not provide."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from fedlab.errors import ConfigurationError

__all__ = ["FlowerCompatError", "missing_attribute", "unknown_arguments", "unsupported_name"]

_PREFIX = "fedlab.compat.flower."
#: Module attributes test runners probe for; they are not Flower names.
_PROBED = ("pytest", "setup", "teardown")


class FlowerCompatError(ConfigurationError, ImportError):
    """A Flower module, name or argument that fedlab's Flower layer does not support.

    The message names what was asked for and the nearest thing that is supported. It is
    an ``ImportError`` too, so ``from flwr.x import y`` guarded by ``except ImportError``
    keeps working, and a ``ValueError`` like every configuration error of fedlab.
    """


def _nearest(name: str, known: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.5)
    return close[0] if close else None


def unsupported_name(
    module: str, name: str, known: Iterable[str], hints: Mapping[str, str] | None = None
) -> FlowerCompatError:
    """The error for ``module.name`` that the layer lacks, naming the nearest supported name.

    ``hints`` maps names Flower has but fedlab does not to what to use instead.

    Examples
    --------
    >>> print(unsupported_name("flwr.app", "ArrayRecrd", ["ArrayRecord", "Message"]))
    flwr.app.ArrayRecrd is not supported by fedlab's Flower compatibility layer; the nearest supported name is flwr.app.ArrayRecord.
    """
    head = f"{module}.{name} is not supported by fedlab's Flower compatibility layer"
    hint = (hints or {}).get(name)
    if hint is not None:
        return FlowerCompatError(f"{head}; {hint}")
    nearest = _nearest(name, known)
    if nearest is None:
        return FlowerCompatError(f"{head}; {module} provides: {', '.join(sorted(known))}.")
    return FlowerCompatError(f"{head}; the nearest supported name is {module}.{nearest}.")


def unknown_arguments(
    where: str,
    given: Mapping[str, object],
    known: Iterable[str],
    hints: Mapping[str, str] | None = None,
) -> None:
    """Raise a FlowerCompatError if ``given`` holds keyword arguments ``where`` does not take.

    Examples
    --------
    >>> unknown_arguments("FedAvg", {"fraction_fit": 0.5}, ["fraction_train"])
    Traceback (most recent call last):
    ...
    fedlab.compat.flower.error.FlowerCompatError: FedAvg(fraction_fit=...) is not supported by fedlab's Flower compatibility layer; the nearest supported argument is fraction_train=....
    """
    if not given:
        return
    name = min(given)
    head = f"{where}({name}=...) is not supported by fedlab's Flower compatibility layer"
    hint = (hints or {}).get(name)
    if hint is not None:
        raise FlowerCompatError(f"{head}; {hint}")
    nearest = _nearest(name, known)
    if nearest is None:
        raise FlowerCompatError(f"{head}; {where} takes: {', '.join(sorted(known))}.")
    raise FlowerCompatError(f"{head}; the nearest supported argument is {nearest}=....")


def missing_attribute(
    module: str, name: str, known: Iterable[str], hints: Mapping[str, str] | None = None
) -> Exception:
    """What a layer module's ``__getattr__`` raises for ``name``, which it does not define.

    ``module`` is the module's ``__name__`` (``fedlab.compat.flower.flwr.app`` is shown as
    ``flwr.app``). Private and dunder names get a plain AttributeError, as tools probe
    them (``__path__``, ``__wrapped__``), and so do the hook names test runners look for
    (``pytest_plugins``, ``setUpModule``); any other name gets a FlowerCompatError.
    """
    shown = module.removeprefix(_PREFIX)
    if name.startswith("_") or name.lower().startswith(_PROBED):
        return AttributeError(f"module {shown!r} has no attribute {name!r}")
    return unsupported_name(shown, name, known, hints)
