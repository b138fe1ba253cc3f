"""Build the base Transformer and wrap it with LoRA adapters.

Two paths lead to the same PEFT model. :func:`base_model` with a config
(``transformers.BertConfig(...)`` etc.) builds it locally with random weights: nothing is
downloaded, which is what the tests and tutorial use. :func:`base_model` with a name or a
folder calls ``AutoModelForSequenceClassification.from_pretrained``: pass a local folder, or
a Hub name with ``offline=False`` (and ``HF_HUB_OFFLINE`` unset or ``0``) to download it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForSequenceClassification, PretrainedConfig, PreTrainedModel

from fedlab.errors import ConfigurationError

__all__ = ["base_model", "lora_model"]


def base_model(
    source: PretrainedConfig | str | os.PathLike[str],
    *,
    num_labels: int | None = None,
    seed: int = 0,
    offline: bool = True,
) -> PreTrainedModel:
    """A sequence-classification Transformer built from a config or loaded from weights.

    Parameters
    ----------
    source
        A ``transformers`` config (random weights drawn with ``seed``; no network), or a
        model name / local folder handed to ``from_pretrained``.
    num_labels
        Number of classes; taken from the config when ``None``.
    seed
        Seed of the random initial weights, so every client builds the same base model.
    offline
        With ``True`` (default) ``from_pretrained`` reads local files only and never
        contacts the Hub; ``False`` lets it download.

    Examples
    --------
    >>> from transformers import BertConfig
    >>> model = base_model(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
    ...                    num_attention_heads=2, intermediate_size=32), num_labels=3)
    >>> model.config.num_labels
    3
    """
    if isinstance(source, PretrainedConfig):
        config = source
        if num_labels is not None:
            config.num_labels = int(num_labels)
        torch.manual_seed(seed)
        model: PreTrainedModel = AutoModelForSequenceClassification.from_config(config)
        return model
    if not isinstance(source, str | os.PathLike):
        raise ConfigurationError(
            f"base_model got {type(source).__name__}; pass a transformers config or a model "
            "name/folder for from_pretrained."
        )
    extra = {} if num_labels is None else {"num_labels": int(num_labels)}
    loaded: PreTrainedModel = AutoModelForSequenceClassification.from_pretrained(
        source, local_files_only=offline, **extra
    )
    return loaded


def lora_model(
    model: PreTrainedModel,
    target_modules: Sequence[str],
    *,
    rank: int = 8,
    alpha: int = 16,
    modules_to_save: Sequence[str] = ("classifier",),
    dropout: float = 0.0,
) -> PeftModel:
    """Freeze ``model`` and add LoRA adapters to ``target_modules`` (e.g. ``["query", "value"]``).

    ``modules_to_save`` (the classification head by default) stays fully trainable and
    travels with the adapter. Every client must use the same arguments.

    Raises
    ------
    ConfigurationError
        If ``rank`` is not positive.
    """
    if rank < 1:
        raise ConfigurationError(f"rank={rank} is not a LoRA rank; use a positive integer such as 8.")
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        target_modules=list(target_modules),
        modules_to_save=list(modules_to_save),
        lora_dropout=dropout,
    )
    peft_model: PeftModel = get_peft_model(model, config)
    return peft_model
