"""`import fedlab` never imports MLX; the extension exposes what it declares."""

from __future__ import annotations

import subprocess
import sys


def test_import_fedlab_imports_no_mlx_in_a_fresh_interpreter() -> None:
    code = (
        "import sys, fedlab, fedlab.strategy, fedlab.datasets, fedlab.cli.main; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlx'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_import_fedlab_mlx_exposes_its_declared_names() -> None:
    import fedlab_mlx

    assert fedlab_mlx.__all__ == sorted(fedlab_mlx.__all__)
    assert all(hasattr(fedlab_mlx, name) for name in fedlab_mlx.__all__)
