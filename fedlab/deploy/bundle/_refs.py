"""How a captured app refers to a value: by import, or as a literal constant."""

from __future__ import annotations

import ast
import sys
import types

__all__ = ["constant_literal", "describe", "import_statement", "reference"]

_SCALARS = (type(None), bool, int, float, str, bytes)
_CONTAINERS = (tuple, list, set, dict)
_MAX_LITERAL = 1_000_000


def reference(value: object) -> tuple[str, str | None] | None:
    """Return (module, qualname) when ``value`` can be imported by name on a node.

    A module gives ``(name, None)``. Anything else qualifies only if importing its module
    and following its qualified name gives back this very object; ``__main__`` and
    namespaces that are not real modules never qualify.
    """
    if isinstance(value, types.ModuleType):
        name = value.__name__
        if name != "__main__" and sys.modules.get(name) is value and value.__spec__ is not None:
            return name, None
        return None
    module_name = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
    if (
        not isinstance(module_name, str)
        or not isinstance(qualname, str)
        or module_name == "__main__"
    ):
        return None
    module = sys.modules.get(module_name)
    if module is None or getattr(module, "__spec__", None) is None or "<" in qualname:
        return None
    found: object = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return (module_name, qualname) if found is value else None


def import_statement(module: str, qualname: str | None, binding: str) -> str:
    """The statement binding ``binding`` to a module, or to ``qualname`` inside it."""
    if qualname is None:
        return f"import {module}" if binding == module else f"import {module} as {binding}"
    if "." not in qualname:
        suffix = "" if binding == qualname else f" as {binding}"
        return f"from {module} import {qualname}{suffix}"
    alias = f"_fedlab_ref_{binding}"
    return f"import {module} as {alias}\n{binding} = {alias}.{qualname}"


def constant_literal(value: object) -> str | None:
    """Python source for ``value`` if it is a plain constant that round-trips, else None."""
    if not _plain(value):
        return None
    text = repr(value)
    if len(text) > _MAX_LITERAL:
        return None
    try:
        same = ast.literal_eval(text) == value
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return text if same else None


def describe(value: object) -> str:
    """A short phrase naming what ``value`` is, for error messages."""
    if isinstance(value, types.ModuleType):
        return f"the module {value.__name__!r}, which other machines cannot import"
    kind = type(value)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    if isinstance(value, float | str | bytes | int):
        return f"a {name} that cannot be written as a literal (too large, or nan/inf)"
    return f"a {name} object"


def _plain(value: object, depth: int = 0) -> bool:
    if depth > 20:
        return False
    if type(value) in _SCALARS:
        return True
    if type(value) is dict:
        assert isinstance(value, dict)
        return all(_plain(k, depth + 1) and _plain(v, depth + 1) for k, v in value.items())
    if type(value) in _CONTAINERS:
        assert isinstance(value, tuple | list | set)
        return all(_plain(item, depth + 1) for item in value)
    return False
