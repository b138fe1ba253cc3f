"""A fastai Learner's model state survives an ArrayRecord round trip bit for bit, names kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fedlab_fastai import FastaiSetupError, StateMismatchError, array_dataloaders, get_state, set_state
from fastai.learner import Learner

import fedlab as fl


def model(width: int = 4, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(3, width), torch.nn.BatchNorm1d(width), torch.nn.Linear(width, 2))
    with torch.no_grad():
        net[1].running_mean.normal_()
        net[1].num_batches_tracked.fill_(seed + 3)
    return net


def learner(net: torch.nn.Module) -> Learner:
    rows = np.random.default_rng(0).random((8, 3))
    dls = array_dataloaders(rows, [0, 1] * 4, rows, [1, 0] * 4, batch_size=4)
    return Learner(dls, net, loss_func=torch.nn.CrossEntropyLoss())


def test_a_learners_state_round_trips_bit_for_bit_with_names_order_dtypes_and_shapes() -> None:
    source = learner(model(seed=1))
    arrays = get_state(source)
    assert list(arrays) == list(source.model.state_dict())
    assert arrays["1.num_batches_tracked"].dtype == "int64" and arrays["0.weight"].shape == (4, 3)
    target = set_state(learner(model(seed=2)), arrays)
    for name, tensor in source.model.state_dict().items():
        loaded = target.model.state_dict()[name]
        assert loaded.dtype == tensor.dtype and loaded.shape == tensor.shape and torch.equal(loaded, tensor)
    assert get_state(target) == arrays
    assert get_state(set_state(model(seed=5), arrays)) == arrays  # a bare module works too


def test_a_record_for_another_architecture_is_refused_naming_the_difference() -> None:
    with pytest.raises(StateMismatchError, match=r"'0.weight' has shape \(8, 3\).*\(4, 3\)"):
        set_state(learner(model()), get_state(model(width=8)))
    partial = fl.ArrayRecord({k: v for k, v in get_state(model()).items() if k != "2.bias"})
    with pytest.raises(StateMismatchError, match=r"missing \['2.bias'\]"):
        set_state(model(), partial)


def test_dataloaders_refuse_rows_and_labels_of_different_lengths() -> None:
    with pytest.raises(FastaiSetupError, match="x_train has 3 rows but y_train has 2 labels"):
        array_dataloaders(np.zeros((3, 2)), [0, 1], np.zeros((1, 2)), [0])
