"""A bundle of Flower app code says so, and loading it serves `flwr` from the layer."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

APPS = Path(__file__).resolve().parents[4] / "tests" / "integration" / "flower_apps"
ROOT = APPS.parents[2]

SCRIPT = textwrap.dedent(
    """
    import sys
    from fedlab.compat import flower
    from fedlab.deploy import build_bundle, load_bundle

    flower.enable()
    data = build_bundle(
        "npquick.client_app:app", "npquick.server_app:app", project_dir=sys.argv[1]
    )
    flower.disable()
    for name in [m for m in sys.modules if m.startswith(("npquick", "flwr"))]:
        del sys.modules[name]
    sys.path[:] = [p for p in sys.path if p != sys.argv[1]]
    bundle = load_bundle(data)
    app = bundle.client_app()
    print(bundle.manifest["flower"], flower.is_enabled(), type(app).__module__)
    """
)


def test_a_flower_bundle_enables_the_layer_where_it_is_loaded() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(APPS / "numpy_quickstart")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "fedlab.compat.flower.clientapp"]


def test_a_native_bundle_is_not_marked_and_leaves_flwr_alone() -> None:
    from fedlab.deploy import build_bundle, load_bundle

    bundle = load_bundle(build_bundle("fedlab.demo:client"))
    assert bundle.manifest["flower"] is False
