"""Import paths, ``"package.module:attr"``: how fedlab names an app wherever it is given.

A project's ``pyproject.toml`` (``clientapp = "myapp.client_app:app"``), a SuperNode's
``--app``, :func:`~fedlab.deploy.bundle.build_bundle`'s arguments and a bundle's manifest
all name an object this way, and all of them are read here. ``attr`` may be dotted, to
reach an attribute of an attribute (``"myapp.apps:registry.client"``).

Examples
--------
>>> parse_import_path("fedlab.demo:client")
('fedlab.demo', 'client')
>>> type(import_object("fedlab.demo:client")).__name__
'ClientApp'
>>> import_object("fedlab.demo:no_such_app", default=None) is None
True
"""

from __future__ import annotations

import importlib
import os
import re
import sys

from fedlab.errors import BundleError

__all__ = ["import_object", "parse_import_path"]

_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_REQUIRED = object()


def parse_import_path(path: str) -> tuple[str, str]:
    """Split ``"package.module:attr"`` into its module and attribute, checking both.

    Raises
    ------
    BundleError
        If ``path`` is not of that form; the message shows what to write.
    """
    module, sep, attr = path.partition(":")
    if not sep or _DOTTED.fullmatch(module) is None or _DOTTED.fullmatch(attr) is None:
        raise BundleError(
            f"{path!r} is not an import path; write 'package.module:attr', "
            "e.g. 'myapp.client_app:app'."
        )
    return module, attr


def import_object(
    path: str, *, directory: str | os.PathLike[str] | None = None, default: object = _REQUIRED
) -> object:
    """Import the module of ``path`` and return the object it names.

    Parameters
    ----------
    path
        ``"package.module:attr"``.
    directory
        Put first on the import path, unless it is on it already, before importing: an
        app project's directory, or the working directory as ``python -m`` does.
    default
        What to return if the module has no such attribute; without it, AttributeError.

    Raises
    ------
    BundleError
        If ``path`` is not an import path.
    ImportError
        If the module cannot be found; whatever else its code raises passes through too.
    AttributeError
        If the module has no such attribute and no ``default`` was given.
    """
    module, attr = parse_import_path(path)
    if directory is not None and os.fspath(directory) not in sys.path:
        sys.path.insert(0, os.fspath(directory))
    target: object = importlib.import_module(module)
    try:
        for part in attr.split("."):
            target = getattr(target, part)
    except AttributeError:
        if default is _REQUIRED:
            raise
        return default
    return target
