"""fedlab-lightning: federate a PyTorch Lightning ``LightningModule``.

:func:`lightning_client_app` builds a ClientApp that, on every message, builds a fresh
module, loads the global state into it, and trains (``trainer.fit``) or evaluates
(``trainer.validate``) it with a new, quiet Trainer from :func:`quiet_trainer`: no
progress bar, no model summary, no logger, no checkpoints and no ``lightning_logs``.
:func:`get_state` and :func:`set_state` move the module's ``state_dict`` to and from an
:class:`~fedlab.ArrayRecord` with names, dtypes and bytes kept exactly.
"""

from __future__ import annotations

from fedlab_lightning.client import lightning_client_app
from fedlab_lightning.errors import LightningSetupError, StateMismatchError
from fedlab_lightning.state import get_state, set_state
from fedlab_lightning.trainer import quiet, quiet_trainer

__all__ = [
    "LightningSetupError",
    "StateMismatchError",
    "get_state",
    "lightning_client_app",
    "quiet",
    "quiet_trainer",
    "set_state",
]
