"""Reading back the source of functions and classes, and the global names they use.

Notebook kernels register each cell's text in :mod:`linecache`, so :mod:`inspect` finds a
function's source there; a class defined in a notebook has no file :mod:`inspect` can use,
so its source is found through its methods' code objects instead.
"""

from __future__ import annotations

import ast
import dis
import inspect
import linecache
import textwrap
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from fedlab.errors import BundleError

__all__ = ["Source", "class_methods", "class_source", "function_source", "global_names"]

#: Decides whether a decorator is dropped from the captured source (app registrations are
#: replayed explicitly instead).
DecoratorFilter = Callable[[ast.expr], bool]


@dataclass(frozen=True)
class Source:
    """A definition's text and the global names it needs, at definition and at call time."""

    text: str
    definition_names: frozenset[str]
    runtime_names: frozenset[str]


def global_names(code: types.CodeType) -> set[str]:
    """Names ``code`` (and code nested in it) looks up as globals when it runs."""
    names: set[str] = set()
    for instruction in dis.get_instructions(code):
        if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL"):
            names.add(str(instruction.argval))
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= global_names(const)
    return names


def function_source(fn: types.FunctionType, drop: DecoratorFilter) -> Source:
    """Return the source of ``fn`` without the decorators ``drop`` selects."""
    try:
        lines, _ = inspect.getsourcelines(fn)
    except (OSError, TypeError) as exc:
        raise BundleError(
            f"Cannot read the source of {fn.__qualname__!r} (from {fn.__code__.co_filename}): "
            f"{exc}. Define it in a notebook cell or a .py file, not with exec() or in the "
            "interactive prompt."
        ) from None
    text = textwrap.dedent("".join(lines))
    node = _parse_single(text, fn.__name__, (ast.FunctionDef, ast.AsyncFunctionDef))
    assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    dropped = [d for d in node.decorator_list if drop(d)]
    kept = [d for d in node.decorator_list if not drop(d)]
    defaults = [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
    return Source(
        _without(text, dropped),
        frozenset(_loaded_names([*kept, *defaults])),
        frozenset(global_names(fn.__code__)),
    )


def class_methods(cls: type) -> Iterator[types.FunctionType]:
    """The functions defined in ``cls``'s body (unwrapping static/class methods, properties)."""
    for value in vars(cls).values():
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
        if isinstance(value, property):
            yield from (
                f for f in (value.fget, value.fset, value.fdel) if isinstance(f, types.FunctionType)
            )
        elif isinstance(value, types.FunctionType):
            yield value
        elif isinstance(value, type) and value.__qualname__.startswith(cls.__qualname__ + "."):
            yield from class_methods(value)


def class_source(cls: type) -> tuple[Source, str]:
    """Return the source of ``cls`` and the file it was read from."""
    filename, node, lines = _find_class(cls)
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    text = textwrap.dedent("".join(lines[start - 1 : node.end_lineno]))
    methods = [m for m in class_methods(cls) if m.__code__.co_filename == filename]
    runtime: set[str] = set()
    for method in methods:
        runtime |= global_names(method.__code__)
    return Source(text, frozenset(_class_body_names(node)), frozenset(runtime)), filename


def _find_class(cls: type) -> tuple[str, ast.ClassDef, list[str]]:
    candidates: list[tuple[str, int | None]] = []
    try:
        candidates.append((inspect.getsourcefile(cls) or "", getattr(cls, "__firstlineno__", None)))
    except TypeError:  # defined in a notebook or an exec'd namespace: no module file
        pass
    for method in class_methods(cls):
        candidates.append((method.__code__.co_filename, method.__code__.co_firstlineno))
    for filename, line in candidates:
        lines = linecache.getlines(filename)
        try:
            tree = ast.parse("".join(lines))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ClassDef)
                and node.name == cls.__name__
                and (line is None or node.lineno <= line <= (node.end_lineno or node.lineno))
            ):
                return filename, node, lines
    raise BundleError(
        f"Cannot find the source of class {cls.__qualname__!r}: a class defined in a notebook is "
        "found through its methods, and this one has none that fedlab can locate. Give it a "
        "method, or move it into a module that the nodes can import."
    )


def _parse_single(text: str, name: str, kinds: tuple[type[ast.stmt], ...]) -> ast.stmt:
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise BundleError(f"The source of {name!r} does not parse on its own ({exc}).") from None
    if (
        len(tree.body) != 1
        or not isinstance(tree.body[0], kinds)
        or getattr(tree.body[0], "name", None) != name
    ):
        raise BundleError(
            f"The source found for {name!r} is not a single definition of it; define it with "
            "a plain `def` statement in a cell or file of its own."
        )
    return tree.body[0]


def _without(text: str, decorators: list[ast.expr]) -> str:
    lines = text.splitlines(keepends=True)
    drop: set[int] = set()
    for decorator in decorators:
        drop.update(range(decorator.lineno - 1, (decorator.end_lineno or decorator.lineno)))
    return "".join(line for i, line in enumerate(lines) if i not in drop)


def _loaded_names(nodes: list[ast.expr]) -> set[str]:
    return {
        n.id
        for node in nodes
        for n in ast.walk(node)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }


def _class_body_names(node: ast.ClassDef) -> set[str]:
    """Names a class statement evaluates when it runs (not those its methods use later)."""
    names = _loaded_names([*node.decorator_list, *node.bases, *(k.value for k in node.keywords)])
    assigned: set[str] = set()
    for statement in node.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            defaults = [
                *statement.args.defaults,
                *(d for d in statement.args.kw_defaults if d is not None),
            ]
            names |= _loaded_names([*statement.decorator_list, *defaults])
            assigned.add(statement.name)
        elif isinstance(statement, ast.ClassDef):
            names |= _class_body_names(statement)
            assigned.add(statement.name)
        elif isinstance(statement, ast.AnnAssign):
            # Annotations are never evaluated (the captured module defers them).
            names |= _loaded_names([statement.value] if statement.value is not None else [])
            assigned |= {n.id for n in ast.walk(statement.target) if isinstance(n, ast.Name)}
        else:
            for sub in ast.walk(statement):
                if isinstance(sub, ast.Name):
                    (names if isinstance(sub.ctx, ast.Load) else assigned).add(sub.id)
    return names - assigned
