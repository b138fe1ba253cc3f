"""fedlab-fastai: federate a fastai ``Learner``.

:func:`fastai_client_app` builds a ClientApp that, on every message, builds a fresh Learner
on this client's DataLoaders, loads the global state into its model, and trains
(``learn.fit``) or evaluates (``learn.validate``) it with fastai's progress bar and logging
off. :func:`get_state` and :func:`set_state` move the model's ``state_dict`` to and from an
:class:`~fedlab.ArrayRecord` with names, dtypes and bytes kept exactly;
:func:`array_dataloaders` makes CPU DataLoaders from numpy rows.

Only fastai's core, data and learner modules are used (never ``fastai.vision``), so the
extension runs where torchvision cannot be imported.
"""

from __future__ import annotations

from fedlab_fastai.client import fastai_client_app
from fedlab_fastai.data import array_dataloaders
from fedlab_fastai.errors import FastaiSetupError, StateMismatchError
from fedlab_fastai.state import get_state, set_state

__all__ = [
    "FastaiSetupError",
    "StateMismatchError",
    "array_dataloaders",
    "fastai_client_app",
    "get_state",
    "set_state",
]
