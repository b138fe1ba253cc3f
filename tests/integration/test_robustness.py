"""Robust aggregation holds under attack on a real task; FedAvg does not.

Twenty clients train softmax regression on scikit-learn's digits; four of them (two
sending sign-flipped, scaled updates and two sending large Gaussian noise) attack every
round. The experiment is ``bench/strategies_robustness.py`` (which prints the full table);
the runs are seeded and use the inline backend, so the numbers are exact repeats.
"""

from __future__ import annotations

import pytest

from bench import strategies_robustness as bench
from fedlab.simulation import make_node_ids

ROUNDS = 10


@pytest.fixture(scope="module")
def clean_accuracy() -> float:
    accuracy = bench.run("FedAvg", "clean", ROUNDS, seed=0)
    assert accuracy > 0.9  # the task is learnt without attackers
    return accuracy


def test_fedavg_loses_more_than_20_points_to_four_attackers_of_twenty(clean_accuracy: float) -> None:
    assert clean_accuracy - bench.run("FedAvg", "mixed", ROUNDS, seed=0) > 0.20


@pytest.mark.parametrize("strategy", ["FedMedian", "FedTrimmedAvg(0.25)", "Krum", "MultiKrum", "Bulyan"])
def test_robust_rules_finish_within_5_points_of_the_clean_fedavg_run(strategy: str, clean_accuracy: float) -> None:
    assert clean_accuracy - bench.run(strategy, "mixed", ROUNDS, seed=0) <= 0.05


def test_krum_and_bulyan_report_selections_that_never_include_an_attacker() -> None:
    for strategy in ("Krum", "Bulyan"):
        fed = bench.build(strategy, "mixed", rounds=3, seed=0)
        result = fed.run(rounds=3)
        assert result.history is not None
        node_ids = make_node_ids(bench.NUM_CLIENTS, 0)  # partition p runs on node_ids[p]
        attackers = {node_ids[p] for p in bench.MIXED}
        reports = result.history.strategy_reports
        assert [r["round"] for r in reports] == [1, 2, 3]
        for report in reports:
            assert report["strategy"] == strategy
            selected = set(report["info"]["selected"])
            assert selected and not selected & attackers

