"""Capturing an app defined in a notebook (or ``__main__``) by value, as generated source.

The app's functions are copied as source text, each global name they use is bound in
a generated module (an import, a literal, or another captured definition), and the app
is rebuilt at the end by replaying its registrations. What cannot be bound this way
raises :class:`~fedlab.errors.BundleError`; the limits are listed in
:mod:`fedlab.deploy.bundle`.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import types
from dataclasses import dataclass

from fedlab.client import ClientApp
from fedlab.deploy.bundle._files import is_installed, package_files, top_level
from fedlab.deploy.bundle._refs import constant_literal, describe, import_statement, reference
from fedlab.deploy.bundle._source import Source, class_source, function_source
from fedlab.errors import BundleError
from fedlab.server import ServerApp

__all__ = ["capture_app"]

_REGISTRATIONS = frozenset({"train", "evaluate", "query", "lifespan", "main"})
_HEADER = (
    "# Captured by value from {origin} by fedlab.deploy.bundle;\n"
    "# every node rebuilds the app from this source.\n"
    "from __future__ import annotations\n\n"
)


@dataclass
class _Definition:
    text: str
    depends_on: frozenset[str]


def capture_app(app: ClientApp | ServerApp) -> tuple[str, str, dict[str, bytes]]:
    """Capture ``app``; return the generated module's name, the app's name in it, and the files."""
    capture = _Capture(app)
    source = capture.generate()
    module = f"_fedlab_app_{hashlib.sha256(source.encode()).hexdigest()[:12]}"
    files = {f"{module}.py": source.encode()}
    for top in sorted(capture.shipped):
        files.update(package_files(top))
    return module, capture.app_name, files


class _Capture:
    def __init__(self, app: ClientApp | ServerApp) -> None:
        self.app = app
        self.bound: dict[str, object] = {}
        self.imports: dict[str, str] = {}
        self.constants: dict[str, str] = {}
        self.definitions: dict[str, _Definition] = {}
        self.shipped: set[str] = set()
        self.origin = "__main__"
        self.app_name = "app"
        self.app_functions: set[int] = set()

    # -- walking ------------------------------------------------------------------------

    def generate(self) -> str:
        functions: list[tuple[str, object]]
        if isinstance(self.app, ServerApp):
            functions = [("main", self.app._main)]
            if self.app._main is None:
                raise BundleError(
                    "The ServerApp has no main function; decorate one with @app.main()."
                )
        else:
            functions = [(t, route.handler) for t, route in self.app._routes.items()]
            functions += (
                [("lifespan", self.app._lifespan)] if self.app._lifespan is not None else []
            )
            if not functions:
                raise BundleError("The ClientApp has no functions; register one with @app.train().")
        self.app_name = self._name_of_app(functions[0][1])
        self.app_functions = {id(fn) for _, fn in functions}
        self.bound[self.app_name] = self.app
        lines = [self._register(role, fn) for role, fn in functions]
        if isinstance(self.app, ServerApp):
            build = f"{self.app_name} = __fedlab__.ServerApp()"
        else:
            mods = ", ".join(self._callable(mod, "the ClientApp's mods") for mod in self.app._mods)
            build = f"{self.app_name} = __fedlab__.ClientApp(mods=[{mods}])"
        body = "\n".join(["import fedlab as __fedlab__", build, *lines])
        # The app comes after every definition but its own aliases (`client = app`).
        needs = frozenset(n for n in self.definitions if self.bound.get(n) is not self.app)
        self.definitions[self.app_name] = _Definition(body, needs)
        return self._render()

    def _register(self, role: str, fn: object) -> str:
        name = self._callable(fn, f"the app's {role!r} function")
        if role == "main":
            return f"{self.app_name}.main()({name})"
        if role == "lifespan":
            return f"{self.app_name}.lifespan()({name})"
        assert isinstance(self.app, ClientApp)
        category, _, action = role.partition(".")
        mods = ", ".join(
            self._callable(m, f"the mods of {role!r}") for m in self.app._routes[role].mods
        )
        return f"{self.app_name}.{category}({action or 'default'!r}, mods=[{mods}])({name})"

    def _name_of_app(self, fn: object) -> str:
        namespace = getattr(fn, "__globals__", {})
        self.origin = str(namespace.get("__name__", "__main__"))
        return next((k for k, v in namespace.items() if v is self.app and k.isidentifier()), "app")

    def _callable(self, value: object, owner: str) -> str:
        """Bind a function or class the app uses directly; return its name."""
        name = getattr(value, "__name__", None)
        if not isinstance(name, str) or not name.isidentifier():
            raise BundleError(
                f"Cannot capture {owner}: {describe(value)} is not a plain function. Use a "
                "function defined with `def` (not a lambda, partial or callable object)."
            )
        self.bind(name, value, owner)
        return name

    def bind(self, name: str, value: object, owner: str) -> None:
        """Make ``name`` mean ``value`` in the generated module, capturing what it needs."""
        if name in self.bound:
            if self.bound[name] is value or _same_constant(self.bound[name], value):
                return
            raise BundleError(
                f"Cannot capture {owner}: the name {name!r} means two different things in the "
                "captured code. Rename one of them, or re-run the notebook from the top."
            )
        self.bound[name] = value
        if value is self.app:
            self.definitions[name] = _Definition(
                f"{name} = {self.app_name}", frozenset({self.app_name})
            )
            return
        ref = reference(value)
        if ref is not None:
            module, qualname = ref
            if not is_installed(module):
                self.shipped.add(top_level(module))
            self.imports[name] = import_statement(module, qualname, name)
        elif isinstance(value, types.FunctionType | type) and value.__name__ != name:
            # An alias (`step = train`): define it under its own name, then alias it.
            self.bind(value.__name__, value, owner)
            self.definitions[name] = _Definition(
                f"{name} = {value.__name__}", frozenset({value.__name__})
            )
        elif isinstance(value, types.FunctionType):
            self._function(value, name, owner)
        elif isinstance(value, type):
            self._class(value, name)
        else:
            literal = constant_literal(value)
            if literal is None:
                raise BundleError(_uncapturable(owner, name, value))
            self.constants[name] = literal

    def _function(self, fn: types.FunctionType, name: str, owner: str) -> None:
        if fn.__name__ == "<lambda>":
            raise BundleError(
                f"Cannot capture {owner}: {name!r} is a lambda, whose source cannot be isolated; "
                f"define it with `def {name}(...)`."
            )
        free = set(fn.__code__.co_freevars) - {"__class__"}
        if free:
            raise BundleError(
                f"Cannot capture {fn.__qualname__!r}: it is a closure over "
                f"{', '.join(sorted(free))} "
                "(variables of the function that created it). Define it at the top level of the "
                "notebook, passing those values through the run config or constants."
            )
        registered = id(fn) in self.app_functions
        source = function_source(fn, lambda d: self._is_registration(d, fn.__globals__, registered))
        self._define(name, source, fn.__globals__, fn.__qualname__)

    def _class(self, cls: type, name: str) -> None:
        source, _ = class_source(cls)
        methods = [m for m in vars(cls).values() if isinstance(m, types.FunctionType)]
        namespace = methods[0].__globals__ if methods else {}
        self._define(name, source, namespace, cls.__qualname__)

    def _define(self, name: str, source: Source, namespace: dict[str, object], owner: str) -> None:
        self.definitions[name] = _Definition(source.text, source.definition_names - {name})
        for global_name in sorted(source.definition_names | source.runtime_names):
            if global_name.startswith("__") and global_name.endswith("__"):
                continue  # every module has its own __name__, __file__, ...
            if global_name in namespace:
                self.bind(global_name, namespace[global_name], repr(owner))
            elif not hasattr(builtins, global_name) and global_name in source.definition_names:
                raise BundleError(f"{owner!r} uses {global_name!r}, which is not defined.")

    def _is_registration(
        self, decorator: ast.expr, namespace: dict[str, object], registered: bool
    ) -> bool:
        # @app.train(...) and friends are replayed explicitly, so they are dropped. The
        # app's own functions drop them even when `app` is not a global (an app built
        # inside a function), since we know they were registered.
        if not isinstance(decorator, ast.Call) or not isinstance(decorator.func, ast.Attribute):
            return False
        base = decorator.func.value
        return (
            decorator.func.attr in _REGISTRATIONS
            and isinstance(base, ast.Name)
            and (registered or isinstance(namespace.get(base.id), ClientApp | ServerApp))
        )

    # -- rendering ----------------------------------------------------------------------

    def _render(self) -> str:
        parts = [_HEADER.format(origin=self.origin)]
        parts += [self.imports[name] + "\n" for name in sorted(self.imports)]
        parts += [f"{name} = {self.constants[name]}\n" for name in sorted(self.constants)]
        for name in _ordered(self.definitions):
            parts.append("\n\n" + self.definitions[name].text.rstrip("\n") + "\n")
        return "".join(parts)


def _ordered(definitions: dict[str, _Definition]) -> list[str]:
    """Definitions in an order where each comes after those it evaluates when defined."""
    done: list[str] = []
    pending = dict(definitions)
    while pending:
        ready = [n for n, d in pending.items() if not (d.depends_on & pending.keys() - {n})]
        if not ready:
            raise BundleError(
                f"The definitions of {', '.join(sorted(pending))} depend on each other when "
                "they are defined; move them into a module."
            )
        for name in ready:
            done.append(name)
            del pending[name]
    return done


def _same_constant(first: object, second: object) -> bool:
    return type(first) is type(second) and constant_literal(first) is not None and first == second


def _uncapturable(owner: str, name: str, value: object) -> str:
    return (
        f"Cannot capture {owner}: it uses {name!r}, which is {describe(value)}. A notebook app "
        "can use modules, importable functions and classes, functions and classes defined in "
        "the notebook, and constants (None, bool, int, float, str, bytes and tuples, lists, "
        f"sets and dicts of them). Create {name!r} inside the function that needs it (for "
        "example, load data inside train), or move the app into a module and bundle it by "
        "import path ('package.module:app')."
    )
