"""`import fedlab` never imports Lightning (or torch); the extension does when imported."""

from __future__ import annotations

import subprocess
import sys


def test_import_fedlab_imports_neither_lightning_nor_torch_in_a_fresh_interpreter() -> None:
    code = (
        "import sys, fedlab, fedlab.strategy, fedlab.datasets; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'lightning', 'pytorch_lightning', 'lightning_fabric', 'torchmetrics', 'torch'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_import_fedlab_lightning_exposes_its_declared_names() -> None:
    import fedlab_lightning

    assert fedlab_lightning.__all__ == sorted(fedlab_lightning.__all__)
    assert all(hasattr(fedlab_lightning, name) for name in fedlab_lightning.__all__)
