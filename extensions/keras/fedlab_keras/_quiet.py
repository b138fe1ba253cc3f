"""Keep TensorFlow's C++ start-up logging out of notebooks and terminals.

TensorFlow prints its CPU-feature and oneDNN notices to stderr when it is first imported,
and it reads ``TF_CPP_MIN_LOG_LEVEL`` only then: this module must be imported before
``tensorflow`` or ``keras`` is. A value the user set already is kept, so
``TF_CPP_MIN_LOG_LEVEL=0`` still shows everything.
"""

from __future__ import annotations

import os

__all__: list[str] = []

# 2 hides INFO and WARNING lines from the C++ runtime; errors are still printed.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The TensorFlow backend is the one fedlab-keras installs and tests.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
