"""Digits over five clients with a small MLX MLP: the app the MLX tests federate."""

from __future__ import annotations

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
from fedlab_mlx import mlx_client_app
from mlx import nn
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

NUM_CLIENTS = 5
x, y = load_digits(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(
    (x / 16.0).astype(np.float32), y.astype(np.int32), test_size=0.25, random_state=0, stratify=y
)
ROWS = np.array_split(np.random.default_rng(0).permutation(len(x_train)), NUM_CLIENTS)


class MLP(nn.Module):
    """64 pixels -> 32 ReLU units -> 10 digits."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(64, 32)
        self.out = nn.Linear(32, 10)

    def __call__(self, x: mx.array) -> mx.array:
        return self.out(nn.relu(self.hidden(x)))


def make_model() -> MLP:
    """The MLP with fixed initial values (seed 0)."""
    mx.random.seed(0)
    return MLP()


def load_partition(partition_id: int, num_partitions: int) -> tuple[np.ndarray, np.ndarray]:
    """This client's fifth of the training rows (partition sizes differ by one)."""
    rows = ROWS[partition_id]
    return x_train[rows], y_train[rows]


optimizer = optim.Adam(learning_rate=1e-2)
app = mlx_client_app(make_model, load_partition, optimizer=optimizer, epochs=2)
