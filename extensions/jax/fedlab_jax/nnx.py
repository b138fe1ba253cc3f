"""Flax NNX models as a pure ``apply_fn(state, x)`` and their parameter state."""

from __future__ import annotations

from typing import Any

import jax

from fedlab_jax.train import ApplyFn

__all__ = ["nnx_apply"]


def nnx_apply(model: Any) -> tuple[ApplyFn, Any]:
    """Split a Flax NNX module into ``(apply_fn, state)`` for :func:`~fedlab_jax.jax_client_app`.

    ``apply_fn(state, x)`` rebuilds the module from ``state`` (an ``nnx.State`` of every
    variable) and calls it on ``x``, so the module's parameters become a pytree that JAX
    differentiates and fedlab sends. Models whose forward pass updates state (BatchNorm in
    training mode, Dropout's RNG) need their own step; call ``model.eval()`` first.

    Examples
    --------
    >>> from flax import nnx
    >>> apply, state = nnx_apply(nnx.Linear(3, 2, rngs=nnx.Rngs(0)))
    >>> import jax.numpy as jnp
    >>> apply(state, jnp.ones((4, 3))).shape
    (4, 2)
    """
    from flax import nnx

    graphdef, state = nnx.split(model)

    def apply(params: Any, x: jax.Array) -> jax.Array:
        out: jax.Array = nnx.merge(graphdef, params)(x)
        return out

    return apply, state
