"""Checkpoints: the on-disk format, atomic writes, clear errors, and resuming a Federation."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fedlab.checkpoint as checkpoint_module
from fedlab import (
    ArrayRecord,
    ClientApp,
    Context,
    Federation,
    Message,
    MetricRecord,
    RecordDict,
    ServerApp,
)
from fedlab.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from fedlab.errors import CheckpointError, FederationError, StrategyError
from fedlab.events import Event, RunStarted
from fedlab.history import History
from fedlab.records import ConfigRecord
from fedlab.simulation import SimulationGrid
from fedlab.strategy import FedAvg, StrategyState
from fedlab.wire.codec import RECORD_DICT_MAGIC, decode_record_dict


def make_checkpoint(round_: int = 2) -> Checkpoint:
    history = History()
    history(RunStarted(run_id=9, num_rounds=4, node_ids=(11, 12), strategy="FedAvg"))
    node_state = RecordDict(
        {
            "control": ArrayRecord({"w": np.array([[1.5, -2.0]], np.float32)}),
            "calls": MetricRecord({"n": 3, "loss": [0.5, 0.25]}),
            "notes": ConfigRecord({"tag": "eu", "raw": b"\x00\x01", "ok": True}),
        }
    )
    return Checkpoint(
        round=round_,
        num_rounds=4,
        run_id=9,
        strategy="FedAvg",
        strategy_state=StrategyState(
            arrays={"m": ArrayRecord({"w": np.arange(4.0).reshape(2, 2)})},
            values={"rng": [3, [1, 2, 3], None], "steps": 7},
        ),
        node_ids=(11, 12),
        node_states=(node_state, RecordDict()),
        arrays=ArrayRecord(
            {"w": np.array([np.nan, -0.0, 1e-40], np.float32), "b": np.arange(3, dtype=np.int64)}
        ),
        metrics={
            "train": {1: MetricRecord({"num-examples": 30, "loss": 0.75})},
            "server": {0: MetricRecord({"acc": 0.1})},
        },
        history=history,
    )


def test_a_checkpoint_round_trips_every_part_exactly(tmp_path: Path) -> None:
    saved = make_checkpoint()
    save_checkpoint(tmp_path, saved)
    loaded = load_checkpoint(tmp_path)
    assert loaded.arrays == saved.arrays  # bit for bit, NaN and -0.0 included
    assert (loaded.round, loaded.num_rounds, loaded.run_id, loaded.strategy) == (2, 4, 9, "FedAvg")
    assert loaded.strategy_state == saved.strategy_state
    assert loaded.node_ids == (11, 12)
    assert loaded.node_states == saved.node_states
    assert isinstance(loaded.metrics["train"][1]["num-examples"], int)
    assert (
        loaded.metrics["train"] == saved.metrics["train"]
        and loaded.metrics["server"] == saved.metrics["server"]
    )
    assert loaded.history == saved.history
    assert loaded.result().rounds_completed == 2


def test_the_format_is_one_json_commit_record_and_one_record_frame_without_pickle(
    tmp_path: Path,
) -> None:
    save_checkpoint(tmp_path, make_checkpoint())
    meta_file, state_file = sorted(tmp_path.iterdir(), key=lambda p: p.suffix != ".json")
    meta = json.loads(meta_file.read_text("utf-8"))
    assert meta_file.name == "checkpoint.json"
    assert (meta["format"], meta["version"], meta["round"]) == ("fedlab.checkpoint", 1, 2)
    assert meta["state_file"] == state_file.name and state_file.name.startswith("state-000002-")
    data = state_file.read_bytes()
    assert data[:4] == RECORD_DICT_MAGIC and len(data) == meta["state_bytes"]
    assert sorted(decode_record_dict(data)) == [
        "global",
        "node/0/calls",
        "node/0/control",
        "node/0/notes",
        "result/server/0",
        "result/train/1",
        "strategy/m",
    ]
    for blob in (data, meta_file.read_bytes()):
        assert b"\x80\x04\x95" not in blob and b"\x80\x05\x95" not in blob  # pickle frames


def test_loading_never_unpickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_checkpoint(tmp_path, make_checkpoint())

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle was used")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    assert load_checkpoint(tmp_path).round == 2


def test_a_new_checkpoint_replaces_the_old_one_and_its_state_file(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, make_checkpoint(1))
    save_checkpoint(tmp_path, make_checkpoint(2))
    assert load_checkpoint(tmp_path).round == 2
    assert len(list(tmp_path.glob("state-*.flr"))) == 1


def test_an_interrupted_write_leaves_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_checkpoint(tmp_path, make_checkpoint(1))
    real_replace = os.replace

    def interrupted(src: str, dst: str | os.PathLike[str]) -> None:
        if Path(dst).name == "checkpoint.json":  # the new state file is in place, the commit is not
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(checkpoint_module.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, make_checkpoint(2))
    monkeypatch.setattr(checkpoint_module.os, "replace", real_replace)
    assert load_checkpoint(tmp_path).round == 1
    assert len(list(tmp_path.glob("state-*.flr"))) == 2  # the orphan of round 2 ...
    (tmp_path / ".fedlab-tmp-left-by-a-killed-writer").write_bytes(b"half")
    save_checkpoint(tmp_path, make_checkpoint(3))
    assert sorted(p.name[:12] for p in tmp_path.iterdir()) == [
        "checkpoint.j",
        "state-000003",
    ]  # ... is cleaned


def test_a_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="There is no checkpoint in .*checkpoint_dir"):
        load_checkpoint(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "checkpoint.json").write_text("{not json"), "damaged"),
        (
            lambda d: (d / "checkpoint.json").write_text('{"format": "other", "version": 1}'),
            "not a fedlab checkpoint",
        ),
        (lambda d: next(d.glob("state-*")).unlink(), "cannot be read"),
        (lambda d: _flip_last_byte(next(d.glob("state-*"))), "SHA-256"),
        (lambda d: _edit_meta(d, state_file="../../etc/passwd"), "invalid state file"),
        (lambda d: _edit_meta(d, node_ids=[]), "damaged"),
        (lambda d: _edit_meta(d, history={"format": "x"}), "damaged"),
    ],
    ids=[
        "not-json",
        "foreign",
        "state-missing",
        "state-altered",
        "path-escape",
        "node-count",
        "history",
    ],
)
def test_a_damaged_checkpoint_is_a_clear_error(tmp_path: Path, damage: Any, message: str) -> None:
    save_checkpoint(tmp_path, make_checkpoint())
    damage(tmp_path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path)


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _edit_meta(directory: Path, **changes: object) -> None:
    meta = json.loads((directory / "checkpoint.json").read_text())
    meta.update(changes)
    (directory / "checkpoint.json").write_text(json.dumps(meta))


def test_strategy_values_that_json_cannot_store_are_refused(tmp_path: Path) -> None:
    bad = make_checkpoint()
    bad.strategy_state.values["oops"] = object()
    with pytest.raises(CheckpointError, match="StrategyState.arrays"):
        save_checkpoint(tmp_path, bad)


# -- through a Federation ----------------------------------------------------------------


def counting_app() -> ClientApp:
    """Clients whose replies depend on the round, the global arrays and their own state."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        pid = int(ctx.node_config["partition-id"])
        rnd = int(msg.content["config"]["server-round"])  # type: ignore[index, arg-type]
        calls = ctx.state.get("calls", MetricRecord({"n": 0}))
        assert isinstance(calls, MetricRecord)
        calls["n"] = int(calls["n"]) + 1  # type: ignore[call-overload]
        ctx.state["calls"] = calls
        w = (
            msg.content.array_record("arrays").to_numpy()[0] * 0.5
            + np.sin(pid + rnd)
            + int(calls["n"])
        )  # type: ignore[call-overload]
        metrics = MetricRecord({"num-examples": pid + 1, "loss": float(w.sum())})
        return msg.reply(
            RecordDict({"arrays": ArrayRecord([w.astype(np.float32)]), "metrics": metrics})
        )

    return app


def make_fed(directory: Path | None, **kwargs: Any) -> Federation:
    options: dict[str, Any] = {
        "strategy": FedAvg(fraction_train=0.5, fraction_evaluate=0.0, min_train_nodes=1),
        "num_clients": 6,
        "initial_arrays": [np.zeros(3, np.float32)],
        "seed": 3,
        "display": "none",
        "checkpoint_dir": directory,
        "evaluate_fn": lambda rnd, arrays: {"norm": float(np.linalg.norm(arrays.to_numpy()[0]))},
    }
    options.update(kwargs)
    return Federation(counting_app(), **options)


def test_a_stopped_run_resumed_to_the_end_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    full = make_fed(tmp_path / "full").run(rounds=5)
    make_fed(tmp_path / "cut").run(rounds=2)
    resumed = make_fed(tmp_path / "cut").resume(rounds=5)
    assert resumed.arrays == full.arrays
    assert resumed.history is not None and full.history is not None
    assert resumed.history.to_json(include_timings=False) == full.history.to_json(
        include_timings=False
    )
    assert resumed.train_metrics_clientapp == full.train_metrics_clientapp
    assert resumed.evaluate_metrics_serverapp == full.evaluate_metrics_serverapp
    assert (resumed.rounds_completed, resumed.stopped_early) == (5, False)
    assert load_checkpoint(tmp_path / "cut").round == 5


def test_a_resumed_run_announces_where_it_continues_but_its_history_covers_the_whole_run(
    tmp_path: Path,
) -> None:
    make_fed(tmp_path).run(rounds=2)
    fed = make_fed(tmp_path)
    seen: list[Event] = []
    fed.subscribe(seen.append)
    result = fed.resume(rounds=3)
    started = [e for e in seen if isinstance(e, RunStarted)]
    assert [(e.start_round, e.num_rounds) for e in started] == [(3, 3)]
    assert result.history is not None
    assert result.history.run["start_round"] == 1
    assert sorted({c["round"] for c in result.history.clients}) == [1, 2, 3]


def test_resume_restores_each_nodes_context_state(tmp_path: Path) -> None:
    make_fed(tmp_path, strategy=FedAvg(fraction_evaluate=0.0)).run(rounds=2)
    saved = load_checkpoint(tmp_path)
    assert [s["calls"]["n"] for s in saved.node_states] == [2] * 6  # type: ignore[index]
    grid = SimulationGrid(ClientApp(), 6, node_ids=saved.node_ids)
    from fedlab.run.resume import restore_nodes

    restore_nodes(grid, saved)
    assert grid.context(saved.node_ids[4]).state == saved.node_states[4]


def test_resuming_with_another_strategy_or_client_count_is_refused(tmp_path: Path) -> None:
    make_fed(tmp_path).run(rounds=1)

    class OtherAvg(FedAvg):
        pass

    with pytest.raises(CheckpointError, match="FedAvg run.*OtherAvg"):
        make_fed(tmp_path, strategy=OtherAvg(fraction_evaluate=0.0)).resume()
    with pytest.raises(CheckpointError, match="num_clients=6"):
        make_fed(tmp_path, num_clients=5).resume()


def test_resume_without_a_checkpoint_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FederationError, match="checkpoint_dir"):
        make_fed(None).resume()
    with pytest.raises(CheckpointError, match="There is no checkpoint"):
        make_fed(None).resume(tmp_path)


def test_a_server_app_federation_cannot_checkpoint(tmp_path: Path) -> None:
    server = ServerApp()

    @server.main()
    def main(grid: object, context: object) -> None:
        return None

    with pytest.raises(FederationError, match="checkpoint_dir needs a strategy"):
        Federation(counting_app(), server_app=server, checkpoint_dir=tmp_path)


def test_the_strategy_loop_refuses_a_start_round_below_one() -> None:
    grid = SimulationGrid(counting_app(), 2, seed=0)
    with pytest.raises(StrategyError, match="start_round"):
        FedAvg(fraction_evaluate=0.0).start(grid, ArrayRecord([np.zeros(1)]), 2, start_round=0)
