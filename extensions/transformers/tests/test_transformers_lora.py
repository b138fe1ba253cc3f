"""LoRA adapters travel alone, bit for bit, and 5 clients fine-tune a topic classifier."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pytest
import torch
from fedlab_transformers import (
    adapter_arrays,
    base_model,
    encode,
    evaluate_model,
    exchange_bytes,
    lora_client_app,
    lora_model,
    set_adapter_arrays,
    topic_sentences,
    train_tokenizer,
)
from fedlab_transformers.errors import AdapterMismatchError
from peft import PeftModel
from transformers import BertConfig

import fedlab as fl

torch.set_num_threads(1)
TARGETS = ["word_embeddings", "query", "value", "dense"]
TEXTS, LABELS = topic_sentences(900, seed=0)
TOKENIZER = train_tokenizer(TEXTS[:700])
INPUTS, Y = encode(TOKENIZER, TEXTS), torch.tensor(LABELS)


def make_model(rank: int = 4) -> PeftModel:
    config = BertConfig(vocab_size=TOKENIZER.get_vocab_size(), hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=16)
    return lora_model(base_model(config, num_labels=4, seed=0), TARGETS, rank=rank, alpha=2 * rank)


def test_only_adapter_weights_travel_with_peft_names() -> None:
    model = make_model()
    record = adapter_arrays(model)
    assert record and all(".lora_" in name or ".classifier." in name for name in record)
    assert "base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight" in record
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(record) == len(trainable) and record.count_bytes() == sum(p.numel() * 4 for p in trainable)
    sizes = exchange_bytes(model)
    base = sum(p.numel() * 4 for n, p in model.named_parameters() if "lora_" not in n and "modules_to_save" not in n)
    assert sizes == {"adapter": record.count_bytes(), "full": base, "saved": base - record.count_bytes()}
    assert sizes["adapter"] < sizes["full"] / 3


def test_adapter_round_trip_is_bit_exact() -> None:
    trained = make_model()
    with torch.no_grad():
        for p in trained.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p))
    sent = adapter_arrays(trained)
    received = set_adapter_arrays(make_model(), sent)
    back = adapter_arrays(received)
    assert list(back) == list(sent)
    for name in sent:
        assert (back[name].dtype, back[name].shape, bytes(back[name].data)) == (
            sent[name].dtype, sent[name].shape, bytes(sent[name].data))
    logits = trained.eval()(**INPUTS).logits
    assert torch.equal(logits, received.eval()(**INPUTS).logits)


def test_a_record_for_another_rank_is_refused_naming_the_array() -> None:
    with pytest.raises(AdapterMismatchError, match=r"is float32\[2, \d+\] but the model expects float32\[4, \d+\]"):
        set_adapter_arrays(make_model(rank=4), adapter_arrays(make_model(rank=2)))
    record = adapter_arrays(make_model())
    del record[next(iter(record))]
    with pytest.raises(AdapterMismatchError, match="missing"):
        set_adapter_arrays(make_model(), record)


def test_the_tokenizer_is_trained_locally_and_pads_to_a_fixed_length() -> None:
    assert INPUTS["input_ids"].shape == (900, 12)
    assert bool((INPUTS["input_ids"][:, 0] == 2).all())
    assert TOKENIZER.token_to_id("striker") is not None and TOKENIZER.token_to_id("[PAD]") == 0


def test_five_clients_fine_tuning_lora_reach_090_on_held_out_sentences() -> None:
    parts = np.array_split(np.arange(700), 5)

    def load(pid: int, n: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        rows = torch.as_tensor(parts[pid])
        return {k: v[rows] for k, v in INPUTS.items()}, Y[rows]

    app = lora_client_app(make_model, load, epochs=5, lr=1e-2)
    fed = fl.Federation(app, strategy=fl.strategy.FedAvg(fraction_train=1.0, fraction_evaluate=1.0),
                        num_clients=5, initial_arrays=adapter_arrays(make_model()), seed=0, display="none")
    result = fed.run(rounds=5)
    assert result.history is not None and not result.history.failures()
    model = set_adapter_arrays(make_model(), result.arrays)
    held_out = {k: v[700:] for k, v in INPUTS.items()}
    assert evaluate_model(model, held_out, Y[700:])["accuracy"] >= 0.90
