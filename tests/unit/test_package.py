"""The package's public surface: what it exports, and what importing it costs."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import fedlab

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


def test_importing_fedlab_loads_neither_torch_nor_pandas() -> None:
    code = (
        "import sys, fedlab, fedlab.strategy, fedlab.simulation, fedlab.history, fedlab.records.codec\n"
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
