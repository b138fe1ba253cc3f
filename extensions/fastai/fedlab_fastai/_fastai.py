"""The fastai names this package uses, imported once with fastai's import-time warning hushed.

fastai decorates a few layers with ``torch.jit.script``, which newer torch releases
deprecate with a warning at import; nothing here uses TorchScript. Only fastai's core,
data and learner modules are imported: never ``fastai.vision``, so torchvision is not
needed at run time.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=DeprecationWarning)
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from fastai.torch_core import set_seed

__all__ = ["DataLoaders", "Learner", "quietly", "set_seed"]


@contextlib.contextmanager
def quietly(learn: Learner) -> Iterator[None]:
    """Run ``learn`` inside without its per-epoch table and without a progress bar.

    The bar exists only once ``fastai.callback.progress`` was imported (``fastai.basics``
    and the ``*.all`` modules do so); it is then taken off this Learner while inside.
    """
    progress = sys.modules.get("fastai.callback.progress")
    bars = [cb for cb in learn.cbs if progress is not None and isinstance(cb, progress.ProgressCallback)]
    learn.remove_cbs(bars)
    try:
        with learn.no_logging():
            yield
    finally:
        learn.add_cbs(bars)
