"""fed.fork(round=k): the parent's first k rounds bit for bit, then a resume with the new settings."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

import fedlab as fl
from fedlab.checkpoint import load_checkpoint
from fedlab.errors import CheckpointError, FederationError
from fedlab.strategy import FedAdam
from tests.unit.comparison.federations import make_fed


def _first(history: fl.History | None, k: int) -> tuple[list[Any], list[Any]]:
    assert history is not None
    return (
        [r for r in history.rounds if r["round"] <= k],
        [c for c in history.clients if c["round"] <= k],
    )


def test_every_round_is_kept_and_each_kept_round_is_that_round_of_a_run(tmp_path: Path) -> None:
    make_fed(tmp_path / "p", checkpoint_keep="all").run(rounds=4)
    kept = sorted(p.name for p in (tmp_path / "p" / "rounds").iterdir())
    assert kept == ["round-000001", "round-000002", "round-000003", "round-000004"]
    third = load_checkpoint(tmp_path / "p" / "rounds" / "round-000003")
    assert third.round == 3 and third.arrays == make_fed().run(rounds=3).arrays
    assert load_checkpoint(tmp_path / "p").round == 4  # the latest stays where resume() reads it


def test_a_fork_repeats_the_parent_then_continues_as_a_resume_with_the_new_config(
    tmp_path: Path,
) -> None:
    parent_fed = make_fed(tmp_path / "p", checkpoint_keep="all")
    parent = parent_fed.run(rounds=6)
    forked = parent_fed.fork(round=3, config={"step": 4.0})

    assert _first(forked.history, 3) == _first(parent.history, 3)  # timings too: bit for bit
    assert {r: m for r, m in forked.train_metrics_clientapp.items() if r <= 3} == {
        r: m for r, m in parent.train_metrics_clientapp.items() if r <= 3
    }
    assert forked.rounds_completed == 6 and forked.arrays != parent.arrays

    shutil.copytree(tmp_path / "p" / "rounds" / "round-000003", tmp_path / "fresh")
    resumed = make_fed(tmp_path / "fresh", config={"step": 4.0}).resume(rounds=6)
    assert forked.arrays == resumed.arrays
    assert forked.history is not None and resumed.history is not None
    assert forked.history.to_json(include_timings=False) == resumed.history.to_json(
        include_timings=False
    )
    assert forked.train_metrics_clientapp == resumed.train_metrics_clientapp
    assert forked.evaluate_metrics_serverapp == resumed.evaluate_metrics_serverapp
    assert load_checkpoint(tmp_path / "p").round == 6  # the parent's checkpoints are untouched


def test_a_fork_to_another_strategy_keeps_the_parents_client_sampling(tmp_path: Path) -> None:
    parent_fed = make_fed(tmp_path / "p", checkpoint_keep="all")
    parent = parent_fed.run(rounds=5)
    adam = FedAdam(eta=0.05, fraction_train=0.5, fraction_evaluate=0.0, min_train_nodes=1)
    forked = parent_fed.fork(round=2, strategy=adam, rounds=5, checkpoint_dir=tmp_path / "f")
    assert _first(forked.history, 2) == _first(parent.history, 2)

    def sampled(result: fl.Result) -> dict[int, list[int]]:
        assert result.history is not None
        rows = result.history.clients
        return {r: sorted(c["node_id"] for c in rows if c["round"] == r) for r in range(1, 6)}

    assert sampled(forked) == sampled(parent)
    assert forked.arrays != parent.arrays
    assert load_checkpoint(tmp_path / "f").strategy == "FedAdam"
    again = make_fed(tmp_path / "p2", checkpoint_keep="all")
    again.run(rounds=5)
    adam2 = FedAdam(eta=0.05, fraction_train=0.5, fraction_evaluate=0.0, min_train_nodes=1)
    assert again.fork(round=2, strategy=adam2, rounds=5).arrays == forked.arrays  # reproducible


def test_forking_needs_kept_rounds_and_says_which_exist(tmp_path: Path) -> None:
    with pytest.raises(FederationError, match="checkpoint_keep='all' needs checkpoint_dir"):
        make_fed(checkpoint_keep="all")
    with pytest.raises(FederationError, match="must be 'latest' or 'all'"):
        make_fed(tmp_path / "x", checkpoint_keep="every")
    with pytest.raises(FederationError, match="checkpoint_keep='all', run it, then fork"):
        make_fed().fork(round=1)
    fed = make_fed(tmp_path / "p", checkpoint_keep="all")
    fed.run(rounds=2)
    with pytest.raises(CheckpointError, match=r"No checkpoint of round 5 .*kept rounds: 1, 2\)"):
        fed.fork(round=5)
    latest_only = make_fed(tmp_path / "q")
    latest_only.run(rounds=2)
    with pytest.raises(CheckpointError, match="kept rounds: none"):
        latest_only.fork(round=1)


def test_parent_and_fork_are_compared_together(tmp_path: Path) -> None:
    fed = make_fed(tmp_path / "p", checkpoint_keep="all")
    parent = fed.run(rounds=4)
    forked = fed.fork(round=2, config={"step": 3.0})
    both = fl.compare({"parent": parent, "fork": forked})
    table = both.history.to_pandas()
    early = table[table["round"] <= 2].drop(columns=["federation"]).reset_index(drop=True)
    half = len(early) // 2
    assert early.iloc[:half].equals(early.iloc[half:].reset_index(drop=True))
