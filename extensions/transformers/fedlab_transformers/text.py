"""A word-level tokenizer trained locally with ``tokenizers``, and a generated topic task.

:func:`train_tokenizer` learns a vocabulary from your own texts (nothing downloaded);
:func:`encode` turns texts into the ``input_ids``/``attention_mask`` tensors a Transformer
takes. :func:`topic_sentences` generates a four-topic classification task (sport, finance,
weather, baking) with a fixed seed, for tests and the tutorial.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

from fedlab.errors import ConfigurationError

__all__ = ["TOPICS", "encode", "topic_sentences", "train_tokenizer"]

#: The generated task's topics and the words that mark each one.
TOPICS: dict[str, tuple[str, ...]] = {
    "sport": ("goal", "match", "team", "score", "league", "coach", "striker", "referee"),
    "finance": ("stock", "market", "price", "bank", "profit", "shares", "trader", "index"),
    "weather": ("rain", "storm", "cloud", "sunny", "forecast", "wind", "snow", "thunder"),
    "baking": ("recipe", "bake", "flour", "oven", "sugar", "butter", "dough", "taste"),
}
_FILLER = ("the", "a", "today", "we", "said", "very", "new", "and", "of", "about", "this", "some")


def train_tokenizer(texts: Sequence[str], *, max_length: int = 12) -> Tokenizer:
    """A word-level tokenizer trained on ``texts``: ``[CLS]`` first, padded to ``max_length``.

    Special tokens: ``[PAD]`` (id 0), ``[UNK]`` (1), ``[CLS]`` (2).
    """
    if max_length < 2:
        raise ConfigurationError(f"max_length={max_length} leaves no room for words; use 2 or more.")
    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "[CLS]"])
    tokenizer.train_from_iterator(list(texts), trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="[CLS] $A", special_tokens=[("[CLS]", 2)])
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]", length=max_length)
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


def encode(tokenizer: Tokenizer, texts: Sequence[str]) -> dict[str, torch.Tensor]:
    """``{"input_ids": ..., "attention_mask": ...}`` int64 tensors for ``texts``."""
    encodings = tokenizer.encode_batch(list(texts))
    return {
        "input_ids": torch.tensor([e.ids for e in encodings], dtype=torch.long),
        "attention_mask": torch.tensor([e.attention_mask for e in encodings], dtype=torch.long),
    }


def topic_sentences(n: int, *, seed: int = 0, topic_words: int = 3, filler_words: int = 3) -> tuple[list[str], npt.NDArray[np.int64]]:
    """``n`` generated sentences and their topic labels (0..3, in :data:`TOPICS` order).

    Each sentence mixes ``topic_words`` words of its topic with ``filler_words`` common words.
    """
    if n < 1:
        raise ConfigurationError(f"n={n} sentences is not a data set; ask for at least 1.")
    rng = np.random.default_rng(seed)
    vocab = list(TOPICS.values())
    labels = rng.integers(0, len(vocab), n).astype(np.int64)
    texts = []
    for label in labels:
        words = [*rng.choice(vocab[int(label)], topic_words), *rng.choice(_FILLER, filler_words)]
        rng.shuffle(words)
        texts.append(" ".join(str(w) for w in words))
    return texts, labels
