"""An Optax train step and an evaluation step, jit-compiled once per worker.

Every batch has the same shape: the last one is padded and its padding weighted zero, so a
worker compiles each step once, whatever its clients' partition sizes, and reuses it for
every later client call (:func:`fedlab.worker_cache`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt
import optax

import fedlab as fl
from fedlab.errors import ConfigurationError

__all__ = [
    "ApplyFn",
    "JaxSteps",
    "LossFn",
    "evaluate_params",
    "fit_params",
    "jax_steps",
    "softmax_cross_entropy",
]

#: ``apply_fn(params, x) -> logits``: the model as a pure function of its parameters.
ApplyFn = Callable[[Any, jax.Array], jax.Array]
#: ``loss_fn(logits, labels) -> per-example losses``.
LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example cross-entropy of integer ``labels`` under ``logits`` (the default loss)."""
    losses: jax.Array = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return losses


@dataclass
class JaxSteps:
    """One worker's compiled steps, with how often each was traced (compiled) there.

    Attributes
    ----------
    train
        ``train(params, opt_state, x, y, weight) -> (params, opt_state, loss)``.
    evaluate
        ``evaluate(params, x, y, weight) -> (loss_sum, correct)``.
    init
        ``init(params) -> opt_state``.
    traces
        ``{"train": n, "evaluate": n, "init": n}``: each count rises only when JAX traces
        (and so compiles) that step anew.
    """

    train: Callable[..., Any]
    evaluate: Callable[..., Any]
    init: Callable[[Any], Any]
    traces: dict[str, int] = field(default_factory=lambda: {"train": 0, "evaluate": 0, "init": 0})


def jax_steps(
    apply_fn: ApplyFn, optimizer: optax.GradientTransformation, loss_fn: LossFn = softmax_cross_entropy
) -> JaxSteps:
    """This worker's jit-compiled steps for ``apply_fn``, ``optimizer`` and ``loss_fn``.

    The first call on a worker builds them; every later call with the same three objects
    returns the same :class:`JaxSteps`, whose compiled code JAX reuses as long as the
    batch shape stays the same. Build the optimizer once (at module level or in your app
    factory), not per call: a new optimizer object means new steps and a new compilation.

    Examples
    --------
    >>> import jax.numpy as jnp, optax
    >>> def apply(params, x):
    ...     return x @ params["w"]
    >>> sgd = optax.sgd(0.1)
    >>> jax_steps(apply, sgd) is jax_steps(apply, sgd)
    True
    """
    key = ("fedlab_jax.steps", _hashable(apply_fn), _hashable(optimizer), _hashable(loss_fn))
    return fl.worker_cache(key, lambda: _build(apply_fn, optimizer, loss_fn))


def _hashable(value: object) -> Hashable:
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    return value


def _build(apply_fn: ApplyFn, optimizer: optax.GradientTransformation, loss_fn: LossFn) -> JaxSteps:
    traces = {"train": 0, "evaluate": 0, "init": 0}

    def weighted_loss(params: Any, x: jax.Array, y: jax.Array, weight: jax.Array) -> jax.Array:
        losses = loss_fn(apply_fn(params, x), y)
        return jnp.sum(losses * weight) / jnp.maximum(jnp.sum(weight), 1.0)

    def train(params: Any, opt_state: Any, x: jax.Array, y: jax.Array, weight: jax.Array) -> Any:
        traces["train"] += 1  # runs only while JAX traces the step
        loss, grads = jax.value_and_grad(weighted_loss)(params, x, y, weight)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    def evaluate(params: Any, x: jax.Array, y: jax.Array, weight: jax.Array) -> Any:
        traces["evaluate"] += 1
        logits = apply_fn(params, x)
        correct = jnp.sum((jnp.argmax(logits, axis=-1) == y) * weight)
        return jnp.sum(loss_fn(logits, y) * weight), correct

    def init(params: Any) -> Any:
        traces["init"] += 1
        return optimizer.init(params)

    return JaxSteps(jax.jit(train), jax.jit(evaluate), jax.jit(init), traces)


def fit_params(
    steps: JaxSteps,
    params: Any,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    epochs: int = 1,
    batch_size: int = 32,
    seed: int | Sequence[int] = 0,
) -> tuple[Any, float]:
    """Train ``params`` for ``epochs`` shuffled passes over ``(x, y)``; return them and the
    mean loss of the last pass.

    The optimizer state starts fresh, as each federated round starts from new global
    parameters. ``seed`` (an int or a sequence of ints) fixes the shuffle.

    Raises
    ------
    ConfigurationError
        If ``epochs`` or ``batch_size`` is below 1, or there are no rows.
    """
    if epochs < 1 or batch_size < 1:
        raise ConfigurationError(f"epochs and batch_size must be at least 1, got {epochs} and {batch_size}.")
    features, labels = np.asarray(x), np.asarray(y)
    rng = np.random.default_rng(seed)
    opt_state = steps.init(params)
    total, count = 0.0, 0
    for _ in range(epochs):
        total, count = 0.0, 0
        for bx, by, bw in _batches(features, labels, batch_size, rng.permutation(len(labels))):
            params, opt_state, loss = steps.train(params, opt_state, bx, by, bw)
            real = float(bw.sum())
            total, count = total + float(loss) * real, count + int(real)
    return params, total / count


def evaluate_params(
    steps: JaxSteps, params: Any, x: npt.ArrayLike, y: npt.ArrayLike, *, batch_size: int = 32
) -> dict[str, float]:
    """``{"loss": mean loss, "accuracy": share of argmax predictions equal to y}`` on ``(x, y)``.

    Raises
    ------
    ConfigurationError
        If there are no rows.
    """
    features, labels = np.asarray(x), np.asarray(y)
    loss_sum, correct = 0.0, 0.0
    for bx, by, bw in _batches(features, labels, batch_size, np.arange(len(labels))):
        batch_loss, batch_correct = steps.evaluate(params, bx, by, bw)
        loss_sum, correct = loss_sum + float(batch_loss), correct + float(batch_correct)
    return {"loss": loss_sum / len(labels), "accuracy": correct / len(labels)}


def _batches(
    x: npt.NDArray[Any], y: npt.NDArray[Any], size: int, order: npt.NDArray[Any]
) -> Iterator[tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[np.float32]]]:
    if len(y) == 0:
        raise ConfigurationError("The partition has no rows; give every client at least one example.")
    for start in range(0, len(order), size):
        rows = order[start : start + size]
        pad = size - len(rows)
        weight = np.concatenate([np.ones(len(rows), np.float32), np.zeros(pad, np.float32)])
        bx = np.concatenate([x[rows], np.zeros((pad, *x.shape[1:]), x.dtype)])
        by = np.concatenate([y[rows], np.zeros((pad, *y.shape[1:]), y.dtype)])
        yield bx, by, weight
