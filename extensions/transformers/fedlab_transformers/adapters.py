"""A PEFT model's adapter weights as a named :class:`~fedlab.ArrayRecord`, and back.

Only the trainable adapter travels (the LoRA ``lora_A``/``lora_B`` matrices and any
``modules_to_save`` such as a classification head); the frozen base model never leaves the
client. Names are PEFT's own state-dict keys (``base_model.model....lora_A.weight``), so a
record can be saved with ``peft`` tools and read back by name. Arrays keep dtype and shape:
``adapter_arrays`` after ``set_adapter_arrays`` gives back the very same bytes.
"""

from __future__ import annotations

from typing import Any

import torch
from peft import PeftModel, get_peft_model_state_dict, set_peft_model_state_dict

from fedlab import ArrayRecord
from fedlab_transformers.errors import AdapterMismatchError

__all__ = ["adapter_arrays", "exchange_bytes", "set_adapter_arrays"]


def adapter_arrays(model: PeftModel) -> ArrayRecord:
    """The adapter weights of ``model``, named by their PEFT state-dict keys, e.g.
    ``base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight``.
    """
    state = get_peft_model_state_dict(model)
    return ArrayRecord({name: tensor.detach().cpu() for name, tensor in state.items()})


def set_adapter_arrays(model: PeftModel, record: ArrayRecord) -> PeftModel:
    """Load ``record`` (from :func:`adapter_arrays`) into ``model``'s adapter, in place.

    Raises
    ------
    AdapterMismatchError
        If a name is missing or extra, or a shape or dtype differs: the record was made
        for a model with another LoRA configuration (rank, target modules) or base.
    """
    expected = get_peft_model_state_dict(model)
    missing = sorted(set(expected) - set(record))
    extra = sorted(set(record) - set(expected))
    if missing or extra:
        raise AdapterMismatchError(
            f"the adapter record does not fit this model: missing {missing[:3]}, unexpected "
            f"{extra[:3]}; build the model with the same LoraConfig the record came from."
        )
    state: dict[str, Any] = {}
    for name, tensor in expected.items():
        array = record[name]
        dtype = str(tensor.dtype).removeprefix("torch.")
        if tuple(array.shape) != tuple(tensor.shape) or array.dtype != dtype:
            raise AdapterMismatchError(
                f"adapter array {name!r} is {array.dtype}{list(array.shape)} but the model "
                f"expects {dtype}{list(tensor.shape)}; use the same rank and base model."
            )
        state[name] = array.torch()
    result = set_peft_model_state_dict(model, state)
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    if unexpected:
        raise AdapterMismatchError(
            f"PEFT did not load {unexpected[:3]}; build the model with the same LoraConfig."
        )
    return model


def exchange_bytes(model: PeftModel) -> dict[str, int]:
    """Bytes one client sends per round with adapters only, against the whole model.

    Returns ``{"adapter": ..., "full": ..., "saved": ...}``: the adapter record's size,
    the size of the original model's weights (what full fine-tuning would send: every
    weight except the LoRA matrices and PEFT's trainable copies) and their difference.
    """
    adapter = adapter_arrays(model).count_bytes()
    full = sum(int(t.numel()) * int(t.element_size()) for name, t in model.state_dict().items()
               if isinstance(t, torch.Tensor) and "lora_" not in name and "modules_to_save" not in name)
    return {"adapter": adapter, "full": full, "saved": full - adapter}
