"""XGBoost models as bytes in fedlab records, and merging the trees of several models.

A booster travels as its JSON model bytes (``Booster.save_raw("json")``) inside an
:class:`~fedlab.ArrayRecord` holding one ``uint8`` array: nothing is pickled, and the
bytes a node loads are exactly the bytes the sender saved. An empty array stands for
"no model yet" (the first round starts from scratch).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fedlab import ArrayRecord
from fedlab_xgboost.errors import XGBoostModelError

if TYPE_CHECKING:
    import xgboost as xgb

__all__ = [
    "MODEL_KEY",
    "booster_from_bytes",
    "booster_to_bytes",
    "empty_model",
    "merge_models",
    "model_from_record",
    "model_to_record",
    "num_trees",
]

#: The name of the array that holds the model bytes in an ArrayRecord.
MODEL_KEY = "model"


def booster_to_bytes(booster: xgb.Booster) -> bytes:
    """Return ``booster``'s JSON model bytes (what :func:`booster_from_bytes` loads)."""
    return bytes(booster.save_raw(raw_format="json"))


def booster_from_bytes(model: bytes, params: dict[str, Any] | None = None) -> xgb.Booster:
    """Load a booster from JSON (or UBJ) model bytes, with ``params`` set on it."""
    import xgboost as xgb

    if not model:
        raise XGBoostModelError("No model bytes to load: the model is empty; train one first.")
    booster = xgb.Booster(params=params)
    booster.load_model(bytearray(model))
    return booster


def model_to_record(model: bytes) -> ArrayRecord:
    """Wrap model bytes in an ArrayRecord (one ``uint8`` array named :data:`MODEL_KEY`)."""
    return ArrayRecord({MODEL_KEY: np.frombuffer(model, dtype=np.uint8).copy()})


def empty_model() -> ArrayRecord:
    """The ArrayRecord of "no model yet": pass it as a Federation's ``initial_arrays``."""
    return model_to_record(b"")


def model_from_record(record: ArrayRecord) -> bytes:
    """Return the model bytes held by ``record`` (empty bytes for :func:`empty_model`)."""
    if MODEL_KEY not in record:
        raise XGBoostModelError(
            f"The ArrayRecord holds no {MODEL_KEY!r} array (it has {sorted(record)}); "
            "wrap XGBoost models with fedlab_xgboost.model_to_record."
        )
    array = record[MODEL_KEY].numpy()
    if array.dtype != np.uint8 or array.ndim != 1:
        raise XGBoostModelError(
            f"The {MODEL_KEY!r} array must be 1-D uint8 model bytes, got {array.dtype} {array.shape}."
        )
    return array.tobytes()


def _parse(model: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(model)
        parsed["learner"]["gradient_booster"]["model"]["trees"]
    except (ValueError, KeyError, TypeError) as exc:
        raise XGBoostModelError(
            "Model bytes are not an XGBoost JSON tree model (save boosters with "
            "fedlab_xgboost.booster_to_bytes, booster='gbtree')."
        ) from exc
    return dict(parsed)


def _trees(parsed: dict[str, Any]) -> dict[str, Any]:
    return dict(parsed["learner"]["gradient_booster"]["model"])


def num_trees(model: bytes) -> int:
    """The number of trees in JSON model bytes (0 for empty bytes)."""
    return 0 if not model else len(_trees(_parse(model))["trees"])


def merge_models(base: bytes, models: Sequence[bytes]) -> bytes:
    """Return ``base`` with the trees each of ``models`` added after it, in order.

    Every model in ``models`` must have been boosted from ``base`` (its first trees are
    ``base``'s; with empty ``base``, from scratch with the same ``base_score``). The result
    holds ``base``'s trees, then each model's new trees, renumbered, with ``num_trees``,
    ``tree_info`` and ``iteration_indptr`` fixed: its margin is the base margin plus every
    model's added margin.
    """
    if not models:
        raise XGBoostModelError("merge_models needs at least one model to merge.")
    parsed = [_parse(m) for m in models]
    merged = _parse(base) if base else json.loads(json.dumps(parsed[0]))
    first = _trees(merged)
    start_trees = len(first["trees"]) if base else 0
    start_iters = len(first["iteration_indptr"]) - 1 if base else 0
    trees = list(first["trees"][:start_trees])
    info = list(first["tree_info"][:start_trees])
    indptr = list(first["iteration_indptr"][: start_iters + 1])
    for index, model in enumerate(parsed):
        part = _trees(model)
        if len(part["trees"]) < start_trees or part["trees"][:start_trees] != first["trees"][:start_trees]:
            raise XGBoostModelError(
                f"Model {index} was not boosted from the global model (its first "
                f"{start_trees} trees differ); clients must continue the model they were sent."
            )
        if model["learner"]["learner_model_param"] != merged["learner"]["learner_model_param"]:
            raise XGBoostModelError(
                f"Model {index} has other learner parameters (base_score, classes) than the "
                "others; set the same base_score and objective on every client."
            )
        trees.extend(part["trees"][start_trees:])
        info.extend(part["tree_info"][start_trees:])
        ptr = part["iteration_indptr"]
        for j in range(start_iters + 1, len(ptr)):
            indptr.append(indptr[-1] + ptr[j] - ptr[j - 1])
    for tree_id, tree in enumerate(trees):
        tree["id"] = tree_id
    target = merged["learner"]["gradient_booster"]["model"]
    target["trees"], target["tree_info"], target["iteration_indptr"] = trees, info, indptr
    target["gbtree_model_param"]["num_trees"] = str(len(trees))
    merged["learner"].get("attributes", {}).pop("best_iteration", None)
    merged["learner"].get("attributes", {}).pop("best_score", None)
    return json.dumps(merged, separators=(",", ":")).encode()
