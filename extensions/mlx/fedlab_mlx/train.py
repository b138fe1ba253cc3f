"""One worker's MLX model, optimizer and ``mx.compile``'d train step, built once and reused.

Every batch has the same shape (the last one is padded and its padding weighted zero), so
the compiled step is traced once per worker, whatever the clients' partition sizes. Each
call starts the optimizer from its initial state, so no client inherits another client's
moments on a shared worker.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
import numpy.typing as npt
from mlx import nn
from mlx.nn.layers.base import Module
from mlx.nn.utils import value_and_grad
from mlx.utils import tree_map

import fedlab as fl
from fedlab.errors import ConfigurationError

__all__ = [
    "LossFn",
    "MlxTrainer",
    "cross_entropy",
    "evaluate_model",
    "fit_model",
    "mlx_trainer",
]

#: ``loss_fn(logits, labels) -> per-example losses``.
LossFn = Callable[[mx.array, mx.array], mx.array]


def cross_entropy(logits: mx.array, labels: mx.array) -> mx.array:
    """Per-example softmax cross-entropy of integer ``labels`` under ``logits`` (the default)."""
    losses: mx.array = nn.losses.cross_entropy(logits, labels, reduction="none")
    return losses


@dataclass
class MlxTrainer:
    """One worker's model, optimizer and steps.

    Attributes
    ----------
    model
        The worker's module; load the round's parameters into it
        (:func:`~fedlab_mlx.load_parameters`) before each use.
    optimizer
        The worker's copy of the optimizer; :meth:`reset_optimizer` restores its initial state.
    train
        ``train(x, y, weight) -> loss``: one optimizer step on a batch, updating
        ``model`` and ``optimizer`` in place (``mx.compile``'d unless built with
        ``compile=False``).
    evaluate
        ``evaluate(x, y, weight) -> (loss_sum, correct)`` over a batch.
    traces
        ``{"train": n, "evaluate": n}``: how often each step's Python body ran, i.e. was
        traced (compiled); without compilation it runs at every batch.
    """

    model: Module
    optimizer: optim.Optimizer
    train: Callable[[mx.array, mx.array, mx.array], mx.array]
    evaluate: Callable[[mx.array, mx.array, mx.array], tuple[mx.array, mx.array]]
    traces: dict[str, int] = field(default_factory=lambda: {"train": 0, "evaluate": 0})
    _fresh: Any = None

    def reset_optimizer(self) -> None:
        """Put the optimizer back to its initial state (step 0, zero moments), in place."""
        _assign(self.optimizer.state, tree_map(lambda a: a, self._fresh))


def mlx_trainer(
    model_fn: Callable[[], Module],
    optimizer: optim.Optimizer,
    loss_fn: LossFn = cross_entropy,
    *,
    compile: bool = True,
) -> MlxTrainer:
    """This worker's :class:`MlxTrainer` for ``model_fn``, ``optimizer`` and ``loss_fn``.

    The first call on a worker builds the model with ``model_fn()``, copies ``optimizer``
    (so that two threads never share one) and compiles the steps; later calls with the same
    objects return the same trainer (:func:`fedlab.worker_cache`). Define the three once (at
    module level or in your app factory): new objects mean a new trainer and a new trace.

    Examples
    --------
    >>> import mlx.nn as nn, mlx.optimizers as optim
    >>> opt = optim.SGD(learning_rate=0.1)
    >>> make = lambda: nn.Linear(2, 2)
    >>> mlx_trainer(make, opt) is mlx_trainer(make, opt)
    True
    """
    key = ("fedlab_mlx.trainer", model_fn, id(optimizer), loss_fn, compile)
    return fl.worker_cache(key, lambda: _build(model_fn, optimizer, loss_fn, compile))


def _build(model_fn: Callable[[], Module], template: optim.Optimizer, loss_fn: LossFn, compile: bool) -> MlxTrainer:
    model = model_fn()
    optimizer = copy.deepcopy(template)
    optimizer.init(model.trainable_parameters())  # type: ignore[no-untyped-call]
    fresh = tree_map(lambda a: a, optimizer.state)
    traces = {"train": 0, "evaluate": 0}

    def weighted_loss(m: Module, x: mx.array, y: mx.array, w: mx.array) -> mx.array:
        total: mx.array = (loss_fn(m(x), y) * w).sum() / mx.maximum(w.sum(), 1.0)
        return total

    loss_and_grad = value_and_grad(model, weighted_loss)

    def train(x: mx.array, y: mx.array, w: mx.array) -> mx.array:
        traces["train"] += 1
        loss, grads = loss_and_grad(model, x, y, w)
        optimizer.update(model, grads)
        value: mx.array = loss
        return value

    def evaluate(x: mx.array, y: mx.array, w: mx.array) -> tuple[mx.array, mx.array]:
        traces["evaluate"] += 1
        logits = model(x)
        loss_sum = (loss_fn(logits, y) * w).sum()
        correct = ((mx.argmax(logits, axis=-1) == y) * w).sum()
        return loss_sum, correct

    if compile:
        state = [model.state, optimizer.state]
        train = mx.compile(train, inputs=state, outputs=state)
        evaluate = mx.compile(evaluate, inputs=model.state)
    return MlxTrainer(model, optimizer, train, evaluate, traces, fresh)


def fit_model(
    trainer: MlxTrainer,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    epochs: int = 1,
    batch_size: int = 32,
    seed: int | tuple[int, ...] = 0,
) -> float:
    """Train ``trainer.model`` in place for ``epochs`` shuffled passes; the last batch's loss.

    The optimizer restarts from its initial state. Raises
    :class:`~fedlab.errors.ConfigurationError` for ``epochs`` < 1, ``batch_size`` < 1 or no rows.
    """
    if epochs < 1 or batch_size < 1:
        raise ConfigurationError(f"epochs={epochs} and batch_size={batch_size} must both be >= 1.")
    xs, ys = _rows(x, y)
    trainer.reset_optimizer()
    rng = np.random.default_rng(seed)
    loss = mx.array(0.0)
    for _ in range(epochs):
        for bx, by, bw in _batches(xs, ys, batch_size, rng.permutation(len(ys))):
            loss = trainer.train(bx, by, bw)
            mx.eval(loss, trainer.model.parameters(), trainer.optimizer.state)  # type: ignore[no-untyped-call]
    return _scalar(loss)


def evaluate_model(trainer: MlxTrainer, x: npt.ArrayLike, y: npt.ArrayLike, *, batch_size: int = 32) -> dict[str, float]:
    """``{"loss": mean loss, "accuracy": share correct}`` of ``trainer.model`` on ``(x, y)``."""
    if batch_size < 1:
        raise ConfigurationError(f"batch_size={batch_size} must be >= 1.")
    xs, ys = _rows(x, y)
    loss_sum, correct = 0.0, 0.0
    for bx, by, bw in _batches(xs, ys, batch_size, np.arange(len(ys))):
        batch_loss, batch_correct = trainer.evaluate(bx, by, bw)
        loss_sum += _scalar(batch_loss)
        correct += _scalar(batch_correct)
    return {"loss": loss_sum / len(ys), "accuracy": correct / len(ys)}


def _rows(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.asarray(x), np.asarray(y)
    if len(ys) == 0 or len(xs) != len(ys):
        raise ConfigurationError(
            f"Got {len(xs)} inputs and {len(ys)} labels; give each client at least one row and "
            "one label per input."
        )
    return xs, ys


def _batches(x: np.ndarray, y: np.ndarray, size: int, order: np.ndarray) -> Iterator[tuple[mx.array, mx.array, mx.array]]:
    """Batches of exactly ``size`` rows; the last one padded with weight-0 copies of row 0."""
    for start in range(0, len(order), size):
        rows = order[start : start + size]
        weight = np.zeros(size, np.float32)
        weight[: len(rows)] = 1.0
        padded = np.concatenate([rows, np.full(size - len(rows), order[0])])
        yield mx.array(x[padded]), mx.array(y[padded]), mx.array(weight)


def _assign(target: Any, source: Any) -> None:
    """Copy ``source``'s leaves into the dicts and lists of ``target``, keeping their identity."""
    items = source.items() if isinstance(source, dict) else enumerate(source)
    for key, value in items:
        if isinstance(value, dict | list):
            _assign(target[key], value)
        else:
            target[key] = value


def _scalar(value: mx.array) -> float:
    return float(np.array(value))
