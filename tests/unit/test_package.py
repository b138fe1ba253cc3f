"""The package's public surface: what it exports, and what importing it costs."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import fedlab

ROOT = Path(fedlab.__file__).parent

PACKAGES = sorted(
    name
    for _, name, is_pkg in pkgutil.walk_packages(fedlab.__path__, "fedlab.")
    if is_pkg and name != "fedlab.proto"
) + ["fedlab"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_declares_a_sorted_all_of_existing_names(package: str) -> None:
    module = importlib.import_module(package)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{package} has no __all__"
    assert list(exported) == sorted(exported), f"{package}.__all__ is not sorted"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ names missing objects: {missing}"


def _declared_all(path: Path) -> list[str] | None:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and "__all__" in {
            getattr(target, "id", None)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        }:
            assert node.value is not None
            return list(ast.literal_eval(node.value))
    return None


def test_every_module_that_declares_all_sorts_it() -> None:
    unsorted = [
        str(path.relative_to(ROOT.parent))
        for path in sorted(ROOT.rglob("*.py"))
        if (names := _declared_all(path)) is not None and names != sorted(names)
    ]
    assert unsorted == []


def _undocumented(value: object) -> bool:
    doc = value.__doc__ if isinstance(value, type) else inspect.getdoc(value)
    # A dataclass without a docstring gets its signature as one, which documents nothing.
    return not doc or (isinstance(value, type) and doc.startswith(f"{value.__name__}("))


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_class_function_and_module_has_its_own_docstring(package: str) -> None:
    module = importlib.import_module(package)
    undocumented = [
        name
        for name in module.__all__
        if isinstance(value := getattr(module, name), type | ModuleType)
        or inspect.isfunction(value)
        if _undocumented(value)
    ]  # constants and type aliases cannot carry a docstring; their module's documents them
    assert undocumented == []


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_class_and_function_a_package_holds_is_exported(package: str) -> None:
    module = importlib.import_module(package)
    held = [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and (value.__module__ == package or value.__module__.startswith(f"{package}."))
    ]
    assert sorted(set(held) - set(module.__all__)) == []


def _literal(node: ast.expr) -> Any:
    """The value of a literal, also a dict spreading ``dict.fromkeys(...)`` as ``_HOMES`` does."""
    if isinstance(node, ast.Call) and ast.unparse(node.func) == "dict.fromkeys":
        return dict.fromkeys(*map(_literal, node.args))
    if isinstance(node, ast.Dict):
        value: dict[Any, Any] = {}
        for key, item in zip(node.keys, node.values, strict=True):
            value.update(_literal(item) if key is None else {_literal(key): _literal(item)})
        return value
    return ast.literal_eval(node)


def _fedlab_name_lists() -> dict[str, Any]:
    """``__all__``, ``_HOMES`` and ``_SUBMODULES`` as fedlab/__init__.py assigns them."""
    return {
        target.id: _literal(node.value)
        for node in ast.parse((ROOT / "__init__.py").read_text()).body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name) and target.id in ("__all__", "_HOMES", "_SUBMODULES")
    }


def _fedlab_type_checking_imports() -> dict[str, str | None]:
    """Each name fedlab/__init__.py imports for type checkers, and the module it names."""
    guarded = next(
        node
        for node in ast.parse((ROOT / "__init__.py").read_text()).body
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
    )
    return {
        alias.name: statement.module
        for statement in guarded.body
        if isinstance(statement, ast.ImportFrom)
        for alias in statement.names
    }


def test_fedlab_names_the_same_things_in_all_its_homes_and_its_type_checking_imports() -> None:
    lists = _fedlab_name_lists()
    homes = {**lists["_HOMES"], **dict.fromkeys(lists["_SUBMODULES"], "fedlab")}
    imported = _fedlab_type_checking_imports()

    assert sorted(lists["__all__"]) == sorted(homes) == sorted(imported)
    assert homes == imported  # and each name is looked up where type checkers find it


def test_importing_fedlab_loads_neither_torch_nor_pandas() -> None:
    code = (
        "import sys, fedlab, fedlab.strategy, fedlab.simulation, fedlab.history, fedlab.wire.codec\n"
        "heavy = [m for m in ('torch', 'pandas', 'tensorflow', 'jax', 'datasets', 'ray', 'matplotlib') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_importing_fedlab_itself_loads_nothing_until_a_name_is_used() -> None:
    code = (
        "import sys, fedlab\n"
        "print(','.join(m for m in ('numpy', 'asyncio', 'google.protobuf', 'fedlab.federation') "
        "if m in sys.modules))\n"
        "fed = fedlab.Federation\n"
        "print(fed.__module__, 'numpy' in sys.modules, 'Federation' in dir(fedlab))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["", "fedlab.federation True True"]


def test_an_unknown_attribute_of_fedlab_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Federaton'"):
        fedlab.Federaton  # type: ignore[attr-defined]  # noqa: B018


def test_every_error_derives_from_fedlab_error() -> None:
    from fedlab import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.FedlabError)


def test_the_package_ships_its_type_marker() -> None:
    from importlib.resources import files

    assert files("fedlab").joinpath("py.typed").is_file()


def test_the_version_is_the_distributions_and_reading_it_loads_nothing_else() -> None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    from fedlab.version import __version__

    declared = tomllib.loads((ROOT.parent / "pyproject.toml").read_text())["project"]["version"]
    assert fedlab.__version__ == __version__ == declared
    code = "import sys, fedlab.version; print(sorted(m for m in sys.modules if m.startswith('fedlab')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['fedlab', 'fedlab.version']"
