"""Import paths ``package.module:attr``: one reading for projects, ``--app`` and bundles."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedlab.deploy.import_path import import_object, parse_import_path
from fedlab.errors import BundleError


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder for the test's own ``import_path_*`` modules, forgotten again afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("import_path_")]:
        del sys.modules[name]


def test_an_import_path_splits_into_its_module_and_its_attribute() -> None:
    assert parse_import_path("myapp.client_app:app") == ("myapp.client_app", "app")
    assert parse_import_path("myapp:apps.client") == ("myapp", "apps.client")


@pytest.mark.parametrize(
    "path", ["no_colon_here", "myapp:", ":app", "my-app.client:app", "myapp:app()", "a..b:app"]
)
def test_text_that_is_not_an_import_path_is_refused_with_what_to_write(path: str) -> None:
    with pytest.raises(BundleError) as caught:
        parse_import_path(path)
    assert str(caught.value) == (
        f"{path!r} is not an import path; write 'package.module:attr', e.g. 'myapp.client_app:app'."
    )


def test_the_module_is_imported_from_the_directory_given(folder: Path) -> None:
    (folder / "import_path_here.py").write_text("answer = 42\n")
    assert import_object("import_path_here:answer", directory=folder) == 42
    assert sys.path[0] == str(folder)
    import_object("import_path_here:answer", directory=folder)
    assert sys.path.count(str(folder)) == 1  # put on the path once


def test_a_dotted_attribute_is_looked_up_one_part_at_a_time() -> None:
    assert import_object("fedlab.deploy.import_path:parse_import_path.__name__") == (
        "parse_import_path"
    )


def test_a_missing_attribute_raises_attribute_error_unless_a_default_is_given() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        import_object("fedlab.demo:no_such_name")
    assert import_object("fedlab.demo:no_such_name", default=None) is None
    assert import_object("fedlab.demo:client.no_such_name", default="none") == "none"


def test_a_missing_module_raises_import_error() -> None:
    with pytest.raises(ImportError, match="surely_missing_module_xyz"):
        import_object("surely_missing_module_xyz:app", default=None)


def test_what_the_module_raises_while_importing_passes_through_even_with_a_default(
    folder: Path,
) -> None:
    (folder / "import_path_broken.py").write_text("raise AttributeError('broken on import')\n")
    with pytest.raises(AttributeError, match="broken on import"):
        import_object("import_path_broken:app", directory=folder, default=None)
