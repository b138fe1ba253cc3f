"""fedlab-mlx: federate Apple MLX models.

:func:`parameters_to_record` turns an ``mlx.nn.Module``'s parameters (or any tree of dicts
and lists of ``mx.array``) into an :class:`~fedlab.ArrayRecord` named by dotted key path
(``layers.0.weight``); :func:`load_parameters` and :func:`record_to_parameters` bring it back
bit for bit, bfloat16 included, refusing records that do not fit. :func:`mlx_client_app`
builds a ClientApp that trains with an ``mlx.optimizers`` optimizer; the model and its
``mx.compile``'d step are built once per worker (:func:`mlx_trainer`, on
:func:`fedlab.worker_cache`), not once per client call.
"""

from __future__ import annotations

from fedlab_mlx.client import mlx_client_app
from fedlab_mlx.errors import MlxRecordError
from fedlab_mlx.parameters import load_parameters, parameters_to_record, record_to_parameters
from fedlab_mlx.train import MlxTrainer, cross_entropy, evaluate_model, fit_model, mlx_trainer

__all__ = [
    "MlxRecordError",
    "MlxTrainer",
    "cross_entropy",
    "evaluate_model",
    "fit_model",
    "load_parameters",
    "mlx_client_app",
    "mlx_trainer",
    "parameters_to_record",
    "record_to_parameters",
]
