"""A LightningModule's state survives an ArrayRecord round trip bit for bit, names kept."""

from __future__ import annotations

import pytest
import torch
from fedlab_lightning import StateMismatchError, get_state, quiet_trainer, set_state
from lightning.pytorch import LightningModule

import fedlab as fl


class Mixed(LightningModule):
    """Parameters, batch-norm buffers (an int64 counter among them) and a bfloat16 layer."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Linear(3, width), torch.nn.BatchNorm1d(width))
        self.head = torch.nn.Linear(width, 2).to(torch.bfloat16)
        self.register_buffer("scale", torch.tensor([1.5, -2.0], dtype=torch.float64))


def randomised(seed: int) -> Mixed:
    torch.manual_seed(seed)
    module = Mixed()
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn_like(tensor, dtype=torch.float32).to(tensor.dtype))
            else:
                tensor.fill_(seed + 7)
    return module


def test_state_round_trips_bit_for_bit_with_names_order_dtypes_and_shapes() -> None:
    source = randomised(1)
    arrays = get_state(source)
    assert list(arrays) == list(source.state_dict())  # names and order kept
    assert arrays["encoder.1.num_batches_tracked"].dtype == "int64"
    assert arrays["head.weight"].dtype == "bfloat16" and arrays["head.weight"].shape == (2, 4)

    target = set_state(randomised(2), arrays)
    for name, tensor in source.state_dict().items():
        loaded = target.state_dict()[name]
        assert loaded.dtype == tensor.dtype and loaded.shape == tensor.shape
        assert torch.equal(loaded.view(torch.uint8) if loaded.dim() else loaded, tensor.view(torch.uint8) if tensor.dim() else tensor)
    assert get_state(target) == arrays  # bytes equal
    assert set_state(randomised(3), arrays) is not None and get_state(target) == get_state(set_state(Mixed(), arrays))


def test_a_record_for_another_architecture_is_refused_naming_the_difference() -> None:
    wide = get_state(Mixed(width=8))
    with pytest.raises(StateMismatchError, match=r"'encoder.0.weight' has shape \(8, 3\).*\(4, 3\)"):
        set_state(Mixed(width=4), wide)
    partial = fl.ArrayRecord({k: v for k, v in get_state(Mixed()).items() if k != "scale"})
    with pytest.raises(StateMismatchError, match=r"missing \['scale'\]"):
        set_state(Mixed(), partial)


def test_the_quiet_trainer_writes_nothing_by_default_and_keeps_overrides() -> None:
    trainer = quiet_trainer(3)
    assert trainer.max_epochs == 3 and trainer.logger is None and trainer.checkpoint_callback is None
    assert not trainer.progress_bar_callback
    assert quiet_trainer(1, max_steps=5).max_steps == 5
