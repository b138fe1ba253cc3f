"""A quiet Lightning ``Trainer``: no progress bar, summary, logger, checkpoint or log line."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any

from lightning.fabric.utilities.warnings import PossibleUserWarning
from lightning.pytorch import Trainer

__all__ = ["quiet", "quiet_trainer"]

# Lightning reports the hardware it found ("GPU available: False ...") through these loggers.
_CHATTY_LOGGERS = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")


def quiet_trainer(max_epochs: int = 1, **overrides: Any) -> Trainer:
    """A ``Trainer`` for one client call that prints nothing and writes no file.

    Defaults: CPU, one device, no logger, no checkpointing, no progress bar, no model
    summary, and (the Trainer's own) ``default_root_dir`` left unused, so the working
    directory stays as it was. Pass any ``Trainer`` argument to override a default, e.g.
    ``enable_checkpointing=True, default_root_dir="ckpt"``.

    Parameters
    ----------
    max_epochs
        Local epochs of this call.
    **overrides
        Further ``Trainer`` arguments; they win over the defaults.

    Returns
    -------
    Trainer
        A new Trainer (build one per call: a Trainer keeps state from its last fit).
    """
    settings: dict[str, Any] = {
        "max_epochs": max_epochs,
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    settings.update(overrides)
    with quiet():
        return Trainer(**settings)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence Lightning's info lines, its data-loader hints and its torch deprecations inside.

    The hints (``PossibleUserWarning``: "does not have many workers") are advice for large
    GPU jobs; a client's small CPU partition is read in the main process on purpose.
    """
    loggers = [logging.getLogger(name) for name in _CHATTY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=PossibleUserWarning)
            # Lightning's own use of torch's pytree helpers, deprecated by newer torch releases.
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
