"""A bundle carries the user's own modules its code imports, and says why a module is missing."""

from __future__ import annotations

import linecache
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedlab.deploy.bundle import build_bundle, load_bundle
from fedlab.deploy.bundle._deps import explain_missing

# Imports the bundle's ClientApp in a fresh interpreter whose cwd and path hold no user code.
LOAD = """
import sys
from fedlab.deploy.bundle import load_bundle
from fedlab.errors import BundleError

bundle = load_bundle(open(sys.argv[1], "rb").read())
try:
    bundle.client_app()
except BundleError as exc:
    print(exc)
else:
    print("loaded")
"""


@pytest.fixture
def user_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder of the user's modules, on sys.path here only; its modules are forgotten after."""
    folder = tmp_path / "user"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(str(folder)):
            del sys.modules[name]


def write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text))


def load_elsewhere(data: bytes, tmp_path: Path) -> str:
    node = tmp_path / "node"
    node.mkdir()
    (node / "app.bundle").write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-c", LOAD, "app.bundle"], cwd=node, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_helpers_a_client_module_imports_travel_with_it_transitively(
    user_folder: Path, tmp_path: Path
) -> None:
    write(
        user_folder,
        {
            "deps_client.py": """
                import fedlab as fl
                import deps_helpers
                app = fl.ClientApp()

                @app.train()
                def train(msg, ctx):
                    return msg.reply(msg.content)
                """,
            "deps_helpers.py": "import numpy as np\nfrom deps_tools.scale import triple\n",
            "deps_tools/__init__.py": "",
            "deps_tools/scale.py": "def triple(w):\n    return w * 3\n",
            "deps_unused.py": "x = 1\n",
        },
    )
    data = build_bundle("deps_client:app")
    bundle = load_bundle(data)
    assert sorted(bundle.files) == [
        "deps_client.py",
        "deps_helpers.py",
        "deps_tools/__init__.py",
        "deps_tools/scale.py",
    ]
    assert bundle.manifest["requires"] == {"numpy": ["numpy"]}
    assert bundle.manifest["not_shipped"] == {}
    assert load_elsewhere(data, tmp_path) == "loaded"


def test_a_helper_of_a_notebook_app_brings_the_modules_it_imports(
    user_folder: Path, tmp_path: Path
) -> None:
    write(
        user_folder,
        {
            "nb_outer.py": "from nb_inner import double\n",
            "nb_inner.py": "def double(w):\n    return w * 2\n",
        },
    )
    namespace: dict[str, object] = {"__name__": "__notebook__"}
    cell = textwrap.dedent(
        """
        import fedlab as fl
        import nb_outer
        app = fl.ClientApp()

        @app.train()
        def train(msg, ctx):
            nb_outer.double(1)
            return msg.reply(msg.content)
        """
    )
    linecache.cache["<deps-cell>"] = (
        len(cell),
        None,
        cell.splitlines(keepends=True),
        "<deps-cell>",
    )
    exec(compile(cell, "<deps-cell>", "exec"), namespace)
    files = sorted(load_bundle(build_bundle(namespace["app"])).files)  # type: ignore[arg-type]
    assert files[1:] == ["nb_inner.py", "nb_outer.py"] and files[0].startswith("_fedlab_app_")


def test_a_module_of_the_users_imported_dynamically_is_named_as_not_captured_and_why(
    user_folder: Path, tmp_path: Path
) -> None:
    write(
        user_folder,
        {
            "dyn_client.py": """
                import importlib
                import fedlab as fl
                settings = importlib.import_module("dyn_settings")
                app = fl.ClientApp()

                @app.train()
                def train(msg, ctx):
                    return msg.reply(msg.content)
                """,
            "dyn_settings.py": "LR = 0.1\n",
        },
    )
    data = build_bundle("dyn_client:app")
    assert sorted(load_bundle(data).files) == ["dyn_client.py"]
    assert load_elsewhere(data, tmp_path) == (
        "Importing 'dyn_client' from the bundle failed with ModuleNotFoundError: No module named "
        "'dyn_settings'. 'dyn_settings' is a file of your own on the machine that built the "
        "bundle, and it was not captured into the bundle: no import statement in the shipped "
        "code names it (it is imported dynamically, e.g. with importlib.import_module or "
        "__import__), so the bundle could not see that the app needs it; add `import "
        "dyn_settings` to the app's module, or move it into the app's package."
    )


def test_a_folder_without_init_is_not_shipped_on_a_guess(user_folder: Path) -> None:
    write(
        user_folder,
        {
            "ns_client.py": """
                import fedlab as fl
                try:
                    import ns_logs
                except ImportError:
                    ns_logs = None
                app = fl.ClientApp()

                @app.train()
                def train(msg, ctx):
                    return msg.reply(msg.content)
                """,
            "ns_logs/run-1/config.json": "{}",
        },
    )
    bundle = load_bundle(build_bundle("ns_client:app"))
    assert sorted(bundle.files) == ["ns_client.py"]
    assert bundle.manifest["not_shipped"] == {
        "ns_logs": "it is a folder without __init__.py (a namespace package), which is not "
        "shipped on a guess (it may hold only data); add an __init__.py to ns_logs/ to have it "
        "shipped."
    }


def test_a_module_nobody_recorded_gets_both_fixes() -> None:
    assert explain_missing("nowhere.sub", {"files": {}}) == (
        "'nowhere' is neither in the bundle nor installed on this SuperNode, and no import "
        "statement in the bundle's code names it. If it is an installed package, pip install it "
        "on the SuperNode; if it is a file of your own, import it by name (import nowhere) from "
        "the app's code, so that the bundle captures it."
    )


def test_an_installed_package_of_no_known_distribution_still_says_to_pip_install_it() -> None:
    assert explain_missing("pkgx.sub", {"requires": {"pkgx": []}}) == (
        "'pkgx' is an installed package on the machine that built the bundle, and this "
        "SuperNode lacks it: pip install it on the SuperNode, in the environment the SuperNode "
        "runs in."
    )


def test_a_submodule_missing_from_a_shipped_package_is_said_to_need_installing() -> None:
    manifest = {"files": {"pkg/__init__.py": {}}}
    assert explain_missing("pkg.fast", manifest) == (
        "The bundle ships 'pkg', but not 'pkg.fast': a bundle carries source files only (.py "
        "and small text files), so a compiled module must be installed on the node."
    )
