"""A fastai Learner federated over 5 digits clients reaches 0.90 held-out accuracy, writing nothing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from fedlab_fastai import array_dataloaders, fastai_client_app, get_state, set_state
from fastai.learner import Learner
from fastai.metrics import accuracy
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fedlab as fl

NUM_CLIENTS = 5


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def make_learner(dls: object) -> Learner:
    return Learner(dls, make_model(), loss_func=torch.nn.CrossEntropyLoss(), metrics=accuracy)


x, y = load_digits(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(x / 16.0, y, test_size=0.25, stratify=y, random_state=0)
ROWS = np.array_split(np.random.default_rng(0).permutation(len(x_train)), NUM_CLIENTS)


def partition(pid: int, n: int) -> object:
    rows = ROWS[pid]
    cut = int(0.8 * len(rows))
    train, valid = rows[:cut], rows[cut:]
    return array_dataloaders(x_train[train], y_train[train], x_train[valid], y_train[valid], batch_size=16)


def test_5_digits_clients_reach_090_held_out_accuracy_print_nothing_and_write_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    app = fastai_client_app(make_learner, partition, epochs=2, lr=2e-2)
    fed = fl.Federation(app, strategy=fl.strategy.FedAvg(fraction_train=1.0, fraction_evaluate=1.0),
                        num_clients=NUM_CLIENTS, initial_arrays=get_state(make_model()), seed=0, display="none")
    result = fed.run(rounds=3)
    assert result.history is not None and not result.history.failures()
    model = set_state(make_model(), result.arrays).eval()
    with torch.no_grad():
        predicted = model(torch.tensor(x_test, dtype=torch.float32)).argmax(1).numpy()
    assert float((predicted == y_test).mean()) >= 0.90
    printed = capfd.readouterr()
    assert printed.out == "" and printed.err == ""
    assert os.listdir(tmp_path) == []
    trained = {pid: int(0.8 * len(rows)) for pid, rows in enumerate(ROWS)}
    assert {pid: rounds[3] for pid, rounds in result.history.client_metric("num-examples").items()} == trained
    assert result.history.metric("accuracy", "evaluate")[3] >= 0.90
    assert set(result.history.client_metric("train_loss")) == set(trained)
