"""A bundle's modules come after the standard library and site-packages on the import path."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

from fedlab.deploy.bundle import build_bundle

APP = """
import json

import fedlab as fl

app = fl.ServerApp()


@app.main()
def main(grid, context):
    return json.__file__
"""

# As a ServerApp process loads its bundle: in-process, from a directory holding no code.
LOAD = """
import json, sys
from fedlab.deploy.bundle import load_bundle

app = load_bundle(open(sys.argv[1], "rb").read()).server_app()
print(app(None, None), hasattr(json, "SHADOW"), json.dumps([1]))
"""


def with_file(bundle: bytes, path: str, content: bytes) -> bytes:
    """Rebuild an unsigned bundle with one more shipped file, as a crafted bundle would be."""
    source = zipfile.ZipFile(io.BytesIO(bundle))
    manifest = json.loads(source.read("manifest.json"))
    manifest["files"][path] = {"sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        target.writestr("manifest.json", json.dumps(manifest))
        for name in source.namelist():
            if name.startswith("code/"):
                target.writestr(name, source.read(name))
        target.writestr("code/" + path, content)
    return out.getvalue()


def test_a_bundled_json_module_does_not_shadow_the_standard_library_in_a_serverapp_process(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "shadowserver.py").write_text(APP)
    try:
        plain = build_bundle("fedlab.demo:client", "shadowserver:app", project_dir=project)
    finally:
        sys.modules.pop("shadowserver", None)
    crafted = with_file(plain, "json.py", b"SHADOW = True\nraise SystemExit('shadowed')\n")
    (tmp_path / "app.bundle").write_bytes(crafted)
    out = subprocess.run(
        [sys.executable, "-c", LOAD, "app.bundle"], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    origin, shadowed, dumped = out.stdout.split()
    assert Path(origin) == Path(json.__file__) and shadowed == "False" and dumped == "[1]"
