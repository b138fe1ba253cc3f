"""Checkpoints: what a simulated federation needs to continue exactly where it stopped.

``Federation(..., checkpoint_dir=path)`` writes one after every completed round and
``fed.resume()`` continues from it; :func:`load_checkpoint` reads one for inspection (e.g.
to take the latest global arrays).

On-disk format (version 1)
--------------------------
A checkpoint directory holds two files; nothing in either is pickled.

``checkpoint.json`` (UTF-8 JSON), the commit record::

    {"format": "fedlab.checkpoint", "version": 1,
     "round": 5,                      # rounds completed
     "num_rounds": 10,                # rounds the run was asked for
     "run_id": 123, "strategy": "FedAvg",
     "strategy_values": {...},        # StrategyState.values (its RNG state, counters, ...)
     "node_ids": [...],               # simulated node ids, in partition order
     "state_file": "state-000005-1f2e3d4c.flr", "state_bytes": 4242, "state_sha256": "...",
     "history": {...}}                # History.to_json(), timings included

Ids are integers below 2**63, exact in Python's json; readers that parse every number as
a double (JavaScript) must read them as big integers.

``state-<round>-<random>.flr``, one :func:`~fedlab.wire.codec.encode_record_dict` frame
(``FLR1``, a protobuf header, then the raw array buffers) whose records are:

=====================  ============  ===================================================
record name            kind          content
=====================  ============  ===================================================
``global``             ArrayRecord   the global arrays after the round
``strategy/<name>``    ArrayRecord   ``strategy.state_dict().arrays[name]`` (moments, ...)
``node/<i>/<name>``    any record    ``context.state[name]`` of the node ``node_ids[i]``
``result/<kind>/<r>``  MetricRecord  the Result's metrics of round ``r``, ``kind`` being
                                     ``train``, ``evaluate`` or ``server``
=====================  ============  ===================================================

Writing is atomic. The state file is written under a temporary name, flushed to disk and
renamed into place; then ``checkpoint.json`` the same way. That last rename is the commit:
an interruption at any moment leaves the previous checkpoint or the new one, never a mix,
and the checksum catches a state file damaged later. Older state files are then removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedlab.errors import CheckpointError, CodecError, HistoryError
from fedlab.history import History
from fedlab.records import ArrayRecord, MetricRecord, RecordDict
from fedlab.server.result import Result
from fedlab.strategy.strategy import StrategyState
from fedlab.wire.codec import decode_record_dict, encode_record_dict

__all__ = ["Checkpoint", "load_checkpoint", "save_checkpoint"]

#: The ``format`` field of ``checkpoint.json``.
FORMAT = "fedlab.checkpoint"
#: The version of the on-disk format this module writes and reads.
VERSION = 1
_META = "checkpoint.json"
_STATE_FILE = re.compile(r"state-\d+-[0-9a-f]+\.flr")
_TEMP_PREFIX = ".fedlab-tmp-"
_KINDS = ("train", "evaluate", "server")


@dataclass(frozen=True)
class Checkpoint:
    """A run as it stood after a completed round.

    Attributes
    ----------
    round
        The number of rounds completed.
    num_rounds
        The number of rounds the run was asked for.
    run_id
        The run's id; a resumed run keeps it.
    strategy
        The class name of the run's strategy.
    strategy_state
        What ``strategy.state_dict()`` returned after the round.
    node_ids
        The simulated node ids, in partition order.
    node_states
        Each node's ``context.state``, in the order of ``node_ids``.
    arrays
        The global arrays after the round.
    metrics
        The Result's metrics so far: ``{"train" | "evaluate" | "server": {round: MetricRecord}}``.
    history
        The run's History up to and including the round.
    """

    round: int
    num_rounds: int
    run_id: int
    strategy: str
    strategy_state: StrategyState
    node_ids: tuple[int, ...]
    node_states: tuple[RecordDict, ...]
    arrays: ArrayRecord
    metrics: dict[str, dict[int, MetricRecord]] = field(default_factory=dict)
    history: History = field(default_factory=History)

    def result(self) -> Result:
        """The run's :class:`~fedlab.server.Result` as of this checkpoint."""
        return Result(
            arrays=self.arrays,
            train_metrics_clientapp=dict(self.metrics.get("train", {})),
            evaluate_metrics_clientapp=dict(self.metrics.get("evaluate", {})),
            evaluate_metrics_serverapp=dict(self.metrics.get("server", {})),
            rounds_completed=self.round,
            history=self.history,
        )


def save_checkpoint(directory: str | os.PathLike[str], checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` atomically into ``directory`` (created if needed); return its path.

    Raises
    ------
    CheckpointError
        If the strategy state holds values that JSON cannot store, or writing fails.
    """
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        state = encode_record_dict(_records(checkpoint))
        name = f"state-{checkpoint.round:06d}-{secrets.token_hex(4)}.flr"
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "round": checkpoint.round,
            "num_rounds": checkpoint.num_rounds,
            "run_id": checkpoint.run_id,
            "strategy": checkpoint.strategy,
            "strategy_values": checkpoint.strategy_state.values,
            "node_ids": list(checkpoint.node_ids),
            "state_file": name,
            "state_bytes": len(state),
            "state_sha256": hashlib.sha256(state).hexdigest(),
            "history": json.loads(checkpoint.history.to_json()),
        }
        try:
            text = json.dumps(meta)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{checkpoint.strategy}.state_dict() returned values JSON cannot store ({exc}); "
                "put arrays in StrategyState.arrays and keep values to numbers, str, lists, dicts."
            ) from None
        _write_atomic(path / name, state)
        _write_atomic(path / _META, text.encode("utf-8"))  # the commit
    except CodecError as exc:
        raise CheckpointError(f"The checkpoint cannot be encoded: {exc}") from None
    except OSError as exc:
        raise CheckpointError(f"Could not write the checkpoint to {path}: {exc}.") from None
    for stale in path.iterdir():  # only after the commit: the old files are no longer needed
        if stale.name != name and (
            _STATE_FILE.fullmatch(stale.name) or stale.name.startswith(_TEMP_PREFIX)
        ):
            stale.unlink(missing_ok=True)
    return path


def load_checkpoint(directory: str | os.PathLike[str]) -> Checkpoint:
    """Read the checkpoint in ``directory``.

    Raises
    ------
    CheckpointError
        If there is none, or it is damaged (not JSON, a missing or altered state file,
        an unknown format version).
    """
    path = Path(directory)
    meta_path = path / _META
    if not meta_path.is_file():
        raise CheckpointError(
            f"There is no checkpoint in {str(path)!r} ({_META} is missing). A Federation writes "
            "one after every completed round when given checkpoint_dir=...; check the path."
        )
    try:
        meta = json.loads(meta_path.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise CheckpointError(f"{meta_path} is damaged ({exc}); it cannot be resumed.") from None
    header = (meta.get("format"), meta.get("version")) if isinstance(meta, dict) else None
    if header != (FORMAT, VERSION):
        raise CheckpointError(
            f"{meta_path} is not a fedlab checkpoint of version {VERSION} (format and version: "
            f"{header}); it was written by another program or another fedlab version."
        )
    try:
        return _from_parts(path, meta)
    except (KeyError, IndexError, TypeError, ValueError, HistoryError) as exc:
        raise CheckpointError(f"{meta_path} is damaged ({type(exc).__name__}: {exc}).") from None


def _records(checkpoint: Checkpoint) -> RecordDict:
    records = RecordDict({"global": checkpoint.arrays})
    for name, arrays in checkpoint.strategy_state.arrays.items():
        records[f"strategy/{name}"] = arrays
    for index, state in enumerate(checkpoint.node_states):
        for name, record in state.items():
            records[f"node/{index}/{name}"] = record
    for kind in _KINDS:
        for rnd, metrics in sorted(checkpoint.metrics.get(kind, {}).items()):
            records[f"result/{kind}/{rnd}"] = metrics
    return records


def _from_parts(path: Path, meta: dict[str, Any]) -> Checkpoint:
    name = meta["state_file"]
    if not isinstance(name, str) or not _STATE_FILE.fullmatch(name):
        raise CheckpointError(f"{path / _META} names an invalid state file {name!r}.")
    try:
        data = (path / name).read_bytes()
    except OSError as exc:
        raise CheckpointError(
            f"The checkpoint's state file {name} cannot be read ({exc.strerror}); "
            f"the checkpoint in {str(path)!r} is incomplete."
        ) from None
    if len(data) != meta["state_bytes"] or hashlib.sha256(data).hexdigest() != meta["state_sha256"]:
        raise CheckpointError(
            f"{path / name} does not match the size and SHA-256 recorded in {_META}: "
            "the file was damaged or replaced; the checkpoint cannot be resumed."
        )
    try:
        records = decode_record_dict(data)
    except CodecError as exc:
        raise CheckpointError(f"{path / name} is damaged: {exc}") from None
    node_ids = tuple(int(n) for n in meta["node_ids"])
    strategy_arrays: dict[str, ArrayRecord] = {}
    node_states = [RecordDict() for _ in node_ids]
    metrics: dict[str, dict[int, MetricRecord]] = {kind: {} for kind in _KINDS}
    for key, record in records.items():
        group, _, rest = key.partition("/")
        if group == "strategy" and isinstance(record, ArrayRecord):
            strategy_arrays[rest] = record
        elif group == "node":
            index, _, name = rest.partition("/")
            node_states[int(index)][name] = record
        elif group == "result" and isinstance(record, MetricRecord):
            kind, _, rnd = rest.partition("/")
            metrics[kind][int(rnd)] = record
        elif key != "global":
            raise CheckpointError(f"{path / name} holds an unexpected record {key!r}.")
    return Checkpoint(
        round=int(meta["round"]),
        num_rounds=int(meta["num_rounds"]),
        run_id=int(meta["run_id"]),
        strategy=str(meta["strategy"]),
        strategy_state=StrategyState(arrays=strategy_arrays, values=dict(meta["strategy_values"])),
        node_ids=node_ids,
        node_states=tuple(node_states),
        arrays=records.array_record("global"),
        metrics=metrics,
        history=History.from_json(json.dumps(meta["history"])),
    )


def _write_atomic(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` so that readers see the old file or the new one, whole."""
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=_TEMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable; some platforms cannot fsync a directory
        dir_fd = os.open(target.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
