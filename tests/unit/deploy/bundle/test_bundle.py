"""App bundles built from an import path: round trip, hashes, signatures."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedlab.deploy.bundle import build_bundle, load_bundle
from fedlab.errors import BundleError

CLIENT_APP = """
import numpy as np
import fedlab as fl
from {pkg}.task import scale

app = fl.ClientApp()

@app.train()
def train(msg, ctx):
    w = msg.content["arrays"].to_numpy()[0]
    factor = ctx.run_config.get("factor", 3)
    return msg.reply(fl.RecordDict({{"arrays": fl.ArrayRecord([scale(w, factor)]),
                                     "metrics": fl.MetricRecord({{"num-examples": 1}})}}))
"""

SERVER_APP = """
import fedlab as fl

app = fl.ServerApp()

@app.main()
def main(grid, context):
    return "served"
"""

# Runs in a fresh interpreter whose cwd holds no app code: everything must come from the bundle.
CALL_TRAIN = """
import sys
import numpy as np
from fedlab import ArrayRecord, Context, Message, RecordDict
from fedlab.deploy.bundle import load_bundle

bundle = load_bundle(open(sys.argv[1], "rb").read())
app = bundle.client_app()
msg = Message(RecordDict({"arrays": ArrayRecord([np.array([1.0, 2.0])])}), 5, "train")
reply = app(msg, Context(run_id=1, node_id=5, run_config=bundle.run_config))
assert not reply.has_error(), reply.error
print(reply.content["arrays"].to_numpy()[0].tolist())
"""


@pytest.fixture
def project(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, str]]:
    """An app project with a unique package name, removed from sys.modules afterwards."""
    pkg = f"bundled_{request.node.name.replace('test_', '')[:30]}"
    root = tmp_path / "project"
    (root / pkg).mkdir(parents=True)
    (root / pkg / "__init__.py").write_text("")
    (root / pkg / "task.py").write_text("def scale(w, factor):\n    return w * factor + 1\n")
    (root / pkg / "client_app.py").write_text(CLIENT_APP.format(pkg=pkg))
    (root / pkg / "server_app.py").write_text(SERVER_APP)
    (root / pkg / "settings.json").write_text('{"batch": 32}')
    (root / pkg / "weights.bin").write_bytes(b"\0" * 100)
    (root / pkg / "__pycache__").mkdir()
    (root / pkg / "__pycache__" / "task.cpython-311.pyc").write_bytes(b"junk")
    yield root, pkg
    for name in [m for m in sys.modules if m.partition(".")[0] == pkg]:
        del sys.modules[name]


def run_in_fresh_process(bundle: bytes, tmp_path: Path, script: str = CALL_TRAIN) -> str:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    (elsewhere / "app.bundle").write_bytes(bundle)
    out = subprocess.run(
        [sys.executable, "-c", script, "app.bundle"], cwd=elsewhere, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def rezip(data: bytes, change: dict[str, bytes]) -> bytes:
    """Copy a bundle, replacing the content of the entries named in ``change``."""
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            target.writestr(info, change.get(info.filename, source.read(info.filename)))
    return buffer.getvalue()


def test_an_import_path_bundle_runs_its_client_app_in_a_fresh_process(
    project: tuple[Path, str], tmp_path: Path
) -> None:
    root, pkg = project
    data = build_bundle(f"{pkg}.client_app:app", run_config={"factor": 10}, project_dir=root)
    assert run_in_fresh_process(data, tmp_path) == "[11.0, 21.0]"  # w * 10 + 1


def test_an_app_named_by_a_dotted_attribute_runs_from_its_bundle(
    project: tuple[Path, str], tmp_path: Path
) -> None:
    root, pkg = project
    (root / pkg / "apps.py").write_text(
        f"from types import SimpleNamespace\nfrom {pkg}.client_app import app\n"
        "registry = SimpleNamespace(client=app)\n"
    )
    data = build_bundle(f"{pkg}.apps:registry.client", project_dir=root)
    assert load_bundle(data).manifest["client_app"]["attr"] == "registry.client"
    assert run_in_fresh_process(data, tmp_path) == "[4.0, 7.0]"  # w * 3 + 1


def test_a_bundle_ships_source_and_config_files_but_not_data_or_caches(
    project: tuple[Path, str],
) -> None:
    root, pkg = project
    bundle = load_bundle(build_bundle(f"{pkg}.client_app:app", project_dir=root))
    assert sorted(bundle.files) == [
        f"{pkg}/__init__.py",
        f"{pkg}/client_app.py",
        f"{pkg}/server_app.py",
        f"{pkg}/settings.json",
        f"{pkg}/task.py",
    ]
    assert bundle.manifest["client_app"] == {
        "module": f"{pkg}.client_app",
        "attr": "app",
        "source": "import",
    }
    assert bundle.manifest["files"][f"{pkg}/settings.json"]["size"] == len('{"batch": 32}')


def test_building_twice_gives_identical_bytes_and_digest(project: tuple[Path, str]) -> None:
    root, pkg = project
    first = build_bundle(f"{pkg}.client_app:app", project_dir=root)
    second = build_bundle(f"{pkg}.client_app:app", project_dir=root)
    assert first == second
    assert load_bundle(first).digest == load_bundle(second).digest


def test_a_bundle_carries_its_server_app(project: tuple[Path, str]) -> None:
    root, pkg = project
    bundle = load_bundle(
        build_bundle(f"{pkg}.client_app:app", f"{pkg}.server_app:app", project_dir=root)
    )
    server = bundle.server_app()
    assert server is not None and server(None, None) == "served"  # type: ignore[arg-type]


def test_an_app_object_from_an_importable_module_is_bundled_by_import_path(
    project: tuple[Path, str],
) -> None:
    root, pkg = project
    sys.path.insert(0, str(root))
    try:
        module = __import__(f"{pkg}.client_app", fromlist=["app"])
    finally:
        sys.path.remove(str(root))
    bundle = load_bundle(build_bundle(module.app))
    assert bundle.manifest["client_app"]["source"] == "import"
    assert f"{pkg}/task.py" in bundle.files


def test_fedlab_itself_is_referenced_never_shipped() -> None:
    bundle = load_bundle(build_bundle("fedlab.demo:client"))
    assert dict(bundle.files) == {}
    assert type(bundle.client_app()).__name__ == "ClientApp"


def test_a_changed_file_is_refused(project: tuple[Path, str]) -> None:
    root, pkg = project
    data = build_bundle(f"{pkg}.client_app:app", project_dir=root)
    evil = rezip(
        data, {f"code/{pkg}/task.py": b"import os\ndef scale(w, f):\n    os.system('true')\n"}
    )
    with pytest.raises(BundleError, match="does not match the hash"):
        load_bundle(evil)


def test_a_changed_manifest_is_refused_by_its_signature(project: tuple[Path, str]) -> None:
    root, pkg = project
    key = Ed25519PrivateKey.generate()
    data = build_bundle(f"{pkg}.client_app:app", project_dir=root, signing_key=key)
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("manifest.json"))
    manifest["client_app"]["module"] = f"{pkg}.task"
    forged = rezip(data, {"manifest.json": json.dumps(manifest).encode()})
    with pytest.raises(BundleError, match="modified after it was signed"):
        load_bundle(forged, trusted_keys=[key.public_key()])


def test_an_added_file_is_refused(project: tuple[Path, str]) -> None:
    root, pkg = project
    data = build_bundle(f"{pkg}.client_app:app", project_dir=root)
    buffer = io.BytesIO(data)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("code/sitecustomize.py", "print('hi')")
    with pytest.raises(BundleError, match="do not match its manifest"):
        load_bundle(buffer.getvalue())


def test_a_bundle_signed_by_an_untrusted_key_is_refused(project: tuple[Path, str]) -> None:
    root, pkg = project
    signer, trusted = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    data = build_bundle(f"{pkg}.client_app:app", project_dir=root, signing_key=signer)
    with pytest.raises(BundleError, match="not among the 1 trusted key"):
        load_bundle(data, trusted_keys=[trusted.public_key()])
    assert (
        load_bundle(data, trusted_keys=[trusted.public_key(), signer.public_key()]).signer
        is not None
    )


def test_an_unsigned_bundle_is_refused_when_keys_are_trusted(project: tuple[Path, str]) -> None:
    root, pkg = project
    data = build_bundle(f"{pkg}.client_app:app", project_dir=root)
    assert load_bundle(data).signer is None
    with pytest.raises(BundleError, match="not signed"):
        load_bundle(data, trusted_keys=[])


def test_a_path_escaping_the_bundle_is_refused(project: tuple[Path, str]) -> None:
    root, pkg = project
    data = build_bundle(f"{pkg}.client_app:app", project_dir=root)
    source = zipfile.ZipFile(io.BytesIO(data))
    manifest = json.loads(source.read("manifest.json"))
    manifest["files"]["../evil.py"] = {"sha256": "0" * 64, "size": 0}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        target.writestr("manifest.json", json.dumps(manifest))
        target.writestr("code/../evil.py", "")
    with pytest.raises(BundleError, match="not a plain relative path"):
        load_bundle(buffer.getvalue())


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"not a zip", "not a valid zip"), (b"", "not a valid zip")],
)
def test_bytes_that_are_not_a_bundle_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        load_bundle(data)


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("no_colon_here", "not an import path"),
        ("surely_missing_module_xyz:app", "Cannot import"),
        ("fedlab.demo:main", "not a ClientApp"),
    ],
)
def test_a_bad_import_path_says_what_to_write(app: str, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        build_bundle(app)


def test_run_config_values_must_be_scalars() -> None:
    with pytest.raises(BundleError, match="run_config must map str"):
        build_bundle("fedlab.demo:client", run_config={"lr": [0.1]})  # type: ignore[dict-item]


def test_a_bundle_never_replaces_a_module_the_process_already_imported(
    project: tuple[Path, str], tmp_path: Path
) -> None:
    root, pkg = project
    data = build_bundle(f"{pkg}.client_app:app", project_dir=root)
    # The process already runs a package of the same name (its own code, not the bundle's).
    own = textwrap.dedent(
        f"""
        import os, sys
        os.makedirs("{pkg}", exist_ok=True)
        open("{pkg}/__init__.py", "w").write("")
        open("{pkg}/task.py", "w").write("def scale(w, factor):\\n    return w * 0\\n")
        sys.path.insert(0, os.getcwd())
        import {pkg}.task
        from fedlab.errors import BundleError
        try:
            load_bundle(open(sys.argv[1], "rb").read()).client_app()
        except BundleError as err:
            print("refused", {pkg}.task.__file__.startswith(os.getcwd()))
        """
    )
    assert run_in_fresh_process(data, tmp_path, CALL_TRAIN.split("bundle = ")[0] + own) == "refused True"
