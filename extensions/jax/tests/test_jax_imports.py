"""`import fedlab` never imports JAX, Flax or Optax; the extension exposes what it declares."""

from __future__ import annotations

import subprocess
import sys


def test_import_fedlab_imports_no_jax_flax_or_optax_in_a_fresh_interpreter() -> None:
    code = (
        "import sys, fedlab, fedlab.strategy, fedlab.datasets, fedlab.cli.main; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'jax', 'jaxlib', 'flax', 'optax'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_fedlab_jax_imports_no_flax_until_nnx_apply_is_called() -> None:
    code = "import sys, fedlab_jax; print('flax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_import_fedlab_jax_exposes_its_declared_names() -> None:
    import fedlab_jax

    assert fedlab_jax.__all__ == sorted(fedlab_jax.__all__)
    assert all(hasattr(fedlab_jax, name) for name in fedlab_jax.__all__)
