"""`import fedlab` never imports fastai; fedlab-fastai never imports torchvision."""

from __future__ import annotations

import subprocess
import sys


def test_import_fedlab_imports_neither_fastai_nor_torch_in_a_fresh_interpreter() -> None:
    code = (
        "import sys, fedlab, fedlab.strategy, fedlab.datasets; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'fastai', 'fastcore', 'torch', 'torchvision'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_fedlab_fastai_needs_no_torchvision_in_a_fresh_interpreter() -> None:
    # PyPI's torchvision wheels are CUDA builds that do not load beside a CPU-only torch;
    # the extension uses only fastai's core, data and learner modules.
    code = "import sys, fedlab_fastai; print('fastai' in sys.modules, 'torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True False"


def test_import_fedlab_fastai_exposes_its_declared_names() -> None:
    import fedlab_fastai

    assert fedlab_fastai.__all__ == sorted(fedlab_fastai.__all__)
    assert all(hasattr(fedlab_fastai, name) for name in fedlab_fastai.__all__)
