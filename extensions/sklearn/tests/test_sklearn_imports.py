"""`import fedlab` never imports scikit-learn; the extension does only when imported."""

from __future__ import annotations

import subprocess
import sys


def test_import_fedlab_does_not_import_sklearn_in_a_fresh_interpreter() -> None:
    code = "import sys, fedlab, fedlab.strategy, fedlab.datasets; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_import_fedlab_sklearn_exposes_its_declared_names() -> None:
    import fedlab_sklearn

    assert fedlab_sklearn.__all__ == sorted(fedlab_sklearn.__all__)
    assert all(hasattr(fedlab_sklearn, name) for name in fedlab_sklearn.__all__)
