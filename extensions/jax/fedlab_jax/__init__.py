"""fedlab-jax: federate JAX, Flax and Optax models.

:func:`pytree_to_record` and :func:`record_to_pytree` turn any pytree (nested dicts, lists
and tuples, Flax NNX ``nnx.State``, Linen params, Optax states) into an
:class:`~fedlab.ArrayRecord` named by key path and back, bit for bit.
:func:`jax_client_app` builds a ClientApp that trains with Optax; its jit-compiled steps
are built once per worker (:func:`jax_steps`, on :func:`fedlab.worker_cache`), not once
per client call. Flax is optional: :func:`nnx_apply` imports it when called.
"""

from __future__ import annotations

from fedlab_jax.client import jax_client_app
from fedlab_jax.errors import PytreeRecordError
from fedlab_jax.nnx import nnx_apply
from fedlab_jax.pytree import leaf_names, pytree_to_record, record_to_pytree
from fedlab_jax.train import (
    JaxSteps,
    evaluate_params,
    fit_params,
    jax_steps,
    softmax_cross_entropy,
)

__all__ = [
    "JaxSteps",
    "PytreeRecordError",
    "evaluate_params",
    "fit_params",
    "jax_client_app",
    "jax_steps",
    "leaf_names",
    "nnx_apply",
    "pytree_to_record",
    "record_to_pytree",
    "softmax_cross_entropy",
]
