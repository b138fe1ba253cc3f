"""`import fedlab` never imports TensorFlow or Keras; importing the extension prints nothing."""

from __future__ import annotations

import os
import subprocess
import sys


def test_import_fedlab_does_not_import_tensorflow_or_keras_in_a_fresh_interpreter() -> None:
    code = ("import sys, fedlab, fedlab.strategy, fedlab.datasets, fedlab.client, fedlab.server; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'tf_keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_importing_the_extension_and_training_prints_nothing_to_stderr() -> None:
    code = (
        "import fedlab_keras, keras, numpy as np\n"
        "m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])\n"
        "m.compile(optimizer='sgd', loss='mse')\n"
        "m.fit(np.ones((8, 4)), np.ones((8, 2)), verbose=0)\n"
        "print(keras.backend.backend())\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stderr == ""
    assert out.stdout == "tensorflow\n"


def test_import_fedlab_keras_exposes_its_declared_names() -> None:
    import fedlab_keras

    assert fedlab_keras.__all__ == sorted(fedlab_keras.__all__)
    assert all(hasattr(fedlab_keras, name) for name in fedlab_keras.__all__)
