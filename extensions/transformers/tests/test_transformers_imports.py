"""`import fedlab` imports neither transformers nor peft (nor tokenizers, nor torch)."""

from __future__ import annotations

import subprocess
import sys


def test_import_fedlab_imports_no_hugging_face_package_in_a_fresh_interpreter() -> None:
    code = ("import sys, fedlab, fedlab.strategy; "
            "print(sorted(m for m in ('transformers', 'peft', 'tokenizers', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_extension_exposes_its_declared_names() -> None:
    import fedlab_transformers

    assert fedlab_transformers.__all__ == sorted(fedlab_transformers.__all__)
    assert all(hasattr(fedlab_transformers, name) for name in fedlab_transformers.__all__)
