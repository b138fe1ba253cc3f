"""A LightningModule federated over 5 digits clients reaches 0.90, quietly and writing nothing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from fedlab_lightning import get_state, lightning_client_app, set_state
from lightning.pytorch import LightningModule
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import TensorDataset

import fedlab as fl

NUM_CLIENTS = 5


class Digits(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val_loss", torch.nn.functional.cross_entropy(logits, y))
        self.log("val_accuracy", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=0.01)


def build() -> Digits:
    torch.manual_seed(0)
    return Digits()


x, y = load_digits(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(x / 16.0, y, test_size=0.25, stratify=y, random_state=0)
ROWS = np.array_split(np.random.default_rng(0).permutation(len(x_train)), NUM_CLIENTS)


def partition(pid: int, n: int) -> TensorDataset:
    rows = ROWS[pid]
    return TensorDataset(torch.tensor(x_train[rows], dtype=torch.float32), torch.tensor(y_train[rows]))


def accuracy(arrays: fl.ArrayRecord) -> float:
    model = set_state(build(), arrays).eval()
    with torch.no_grad():
        predicted = model(torch.tensor(x_test, dtype=torch.float32)).argmax(1).numpy()
    return float((predicted == y_test).mean())


def federate() -> fl.RunResult:
    app = lightning_client_app(build, partition, epochs=2, batch_size=32)
    fed = fl.Federation(app, strategy=fl.strategy.FedAvg(fraction_train=1.0, fraction_evaluate=1.0),
                        num_clients=NUM_CLIENTS, initial_arrays=get_state(build()), seed=0, display="none")
    return fed.run(rounds=3)


def test_5_digits_clients_reach_090_held_out_accuracy_print_nothing_and_write_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    result = federate()
    assert result.history is not None and not result.history.failures()
    assert accuracy(result.arrays) >= 0.90
    printed = capfd.readouterr()
    assert printed.out == "" and printed.err == ""
    assert os.listdir(tmp_path) == []  # no lightning_logs, no checkpoints
    # Each client reported its own example count, and what its validation_step logged.
    assert result.history.client_metric("num-examples") == {pid: {1: len(rows), 2: len(rows), 3: len(rows)} for pid, rows in enumerate(ROWS)}
    evaluated = result.history.metric("val_accuracy", "evaluate")
    assert sorted(evaluated) == [1, 2, 3] and evaluated[3] >= 0.90
