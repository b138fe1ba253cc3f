"""The model and the data: a small MLP on scikit-learn's 8x8 digits, split by partition."""

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn


class Net(nn.Module):
    """64 pixels -> 32 hidden units -> 10 digits."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(64, 32)
        self.out = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))


def new_model() -> Net:
    torch.manual_seed(0)
    return Net()


def load_data(partition_id: int, num_partitions: int) -> tuple[torch.Tensor, ...]:
    """Every client's contiguous share of the digits, 80% to train and 20% to test."""
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    share = np.array_split(np.arange(len(y)), num_partitions)[partition_id]
    cut = int(0.8 * len(share))
    train, test = share[:cut], share[cut:]
    return (
        torch.from_numpy(x[train]),
        torch.from_numpy(y[train]),
        torch.from_numpy(x[test]),
        torch.from_numpy(y[test]),
    )


def train(net: Net, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float, batch: int) -> float:
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    net.train()
    total = 0.0
    for _ in range(epochs):
        for start in range(0, len(y), batch):
            optimizer.zero_grad()
            loss = loss_fn(net(x[start : start + batch]), y[start : start + batch])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(y[start : start + batch])
    return total / (epochs * len(y))


def test(net: Net, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    net.eval()
    with torch.no_grad():
        logits = net(x)
        loss = float(nn.functional.cross_entropy(logits, y))
        accuracy = float((logits.argmax(1) == y).float().mean())
    return loss, accuracy
