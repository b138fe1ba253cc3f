"""Digits over five clients with a small Flax NNX MLP: the app the JAX tests federate."""

from __future__ import annotations

import jax
import numpy as np
import optax
from fedlab_jax import jax_client_app, nnx_apply, softmax_cross_entropy
from flax import nnx
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

NUM_CLIENTS = 5
x, y = load_digits(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(
    (x / 16.0).astype(np.float32), y.astype(np.int32), test_size=0.25, random_state=0, stratify=y
)
ROWS = np.array_split(np.random.default_rng(0).permutation(len(x_train)), NUM_CLIENTS)


class MLP(nnx.Module):
    """64 pixels -> 32 ReLU units -> 10 digits."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        self.hidden = nnx.Linear(64, 32, rngs=rngs)
        self.out = nnx.Linear(32, 10, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(nnx.relu(self.hidden(x)))


def load_partition(partition_id: int, num_partitions: int) -> tuple[np.ndarray, np.ndarray]:
    """This client's fifth of the training rows (partition sizes differ by one)."""
    rows = ROWS[partition_id]
    return x_train[rows], y_train[rows]


#: How often JAX traced the loss, i.e. compiled a step that uses it.
TRACES = {"loss": 0}


def counting_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Softmax cross-entropy; Python runs this only while JAX traces a step."""
    TRACES["loss"] += 1
    return softmax_cross_entropy(logits, labels)


apply, initial_state = nnx_apply(MLP(nnx.Rngs(0)))
optimizer = optax.adam(1e-2)
app = jax_client_app(apply, initial_state, load_partition, optimizer=optimizer, loss_fn=counting_loss, epochs=2)
