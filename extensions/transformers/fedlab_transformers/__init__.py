"""fedlab-transformers: federated LoRA fine-tuning of Hugging Face Transformers.

Clients fine-tune PEFT LoRA adapters on a frozen base model and exchange only the adapter
weights (:func:`adapter_arrays` / :func:`set_adapter_arrays`, PEFT's own names, bit-exact);
:func:`exchange_bytes` says how much that saves against sending the whole model each round.
:func:`base_model` builds the base from a config (random weights, no network) or, with a
name or folder, through ``from_pretrained``; :func:`train_tokenizer` trains a tokenizer
locally with ``tokenizers``; :func:`lora_client_app` is a ready-made ClientApp.

Importing this package sets ``HF_HUB_OFFLINE=1`` unless you have set it yourself, so nothing
contacts the Hugging Face Hub by accident; set ``HF_HUB_OFFLINE=0`` before importing (and
pass ``offline=False`` to :func:`base_model`) to download a model.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from fedlab_transformers.adapters import adapter_arrays, exchange_bytes, set_adapter_arrays
from fedlab_transformers.client import evaluate_model, lora_client_app, train_model
from fedlab_transformers.models import base_model, lora_model
from fedlab_transformers.text import TOPICS, encode, topic_sentences, train_tokenizer

__all__ = [
    "TOPICS",
    "adapter_arrays",
    "base_model",
    "encode",
    "evaluate_model",
    "exchange_bytes",
    "lora_client_app",
    "lora_model",
    "set_adapter_arrays",
    "topic_sentences",
    "train_model",
    "train_tokenizer",
]
