"""The dashboard's model: events folded into grids, bands, timing, progress and failures."""

from __future__ import annotations

import numpy as np

from fedlab.dashboard._model import (
    FAILED,
    FINISHED,
    NOT_SAMPLED,
    SAMPLED,
    TIMED_OUT,
    DashboardModel,
)
from fedlab.events import (
    ClientReplied,
    Evaluated,
    Event,
    ReplyRejected,
    RoundAggregated,
    RoundStarted,
    RunFinished,
    RunStarted,
)
from fedlab.history import History
from fedlab.message import Error, ErrorCode

RUN = 9
NODES = (101, 102, 103)
BOOM = Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, "ValueError: boom\nTraceback (most recent call last):\n  ...")
LATE = Error(ErrorCode.TIMEOUT, "")


def reply(r: int, node: int, loss: float | None, error: Error | None = None, t: float = 0.0) -> ClientReplied:
    metrics = {} if loss is None else {"loss": loss, "acc": 1 - loss, "ok": True, "hist": [1, 2]}
    return ClientReplied(
        run_id=RUN, round=r, phase="train", node_id=node, metrics=metrics, duration_s=0.5 + node % 10,
        error=error, partition_id=node - 101, timestamp=t,
    )


def small_run() -> list[Event]:
    """3 clients, 3 rounds: node 103 fails in round 1 and times out in round 2."""
    return [
        RunStarted(run_id=RUN, num_rounds=3, node_ids=NODES, strategy="FedAvg", timestamp=100.0),
        RoundStarted(run_id=RUN, round=1, phase="train", node_ids=NODES, timestamp=100.0),
        reply(1, 101, 1.0, t=101.0),
        reply(1, 102, 2.0, t=101.0),
        reply(1, 103, None, BOOM, t=101.0),
        RoundAggregated(run_id=RUN, round=1, metrics={}, num_replies=2, num_failures=1,
                        train_duration_s=4.0, aggregate_duration_s=0.5, timestamp=102.0),
        Evaluated(run_id=RUN, round=1, source="server", metrics={"accuracy": 0.5}, duration_s=1.5,
                  timestamp=102.0),
        RoundStarted(run_id=RUN, round=2, phase="train", node_ids=(101, 103), timestamp=102.0),
        reply(2, 101, 3.0, t=103.0),
        reply(2, 103, None, LATE, t=104.0),
    ]


def fed(model: DashboardModel, events: list[Event]) -> DashboardModel:
    for event in events:
        model.feed(event)
    return model


def test_client_metrics_fill_a_clients_by_rounds_grid_with_nan_where_missing() -> None:
    model = fed(DashboardModel(), small_run())
    nan = np.nan
    np.testing.assert_array_equal(model.grid("train:loss"), [[1.0, 3.0, nan], [2.0, nan, nan], [nan, nan, nan]])
    np.testing.assert_array_equal(model.grid("train:acc"), [[0.0, -2.0, nan], [-1.0, nan, nan], [nan, nan, nan]])
    assert model.metrics() == ["train:loss", "train:acc"]  # booleans and lists are not drawn
    assert model.grid("train:loss").dtype == np.float32


def test_participation_keeps_sampled_finished_failed_and_timed_out_apart() -> None:
    model = fed(DashboardModel(), small_run())
    expected = [[FINISHED, FINISHED, NOT_SAMPLED], [FINISHED, NOT_SAMPLED, NOT_SAMPLED], [FAILED, TIMED_OUT, NOT_SAMPLED]]
    np.testing.assert_array_equal(model.status(), expected)
    model.feed(RoundStarted(run_id=RUN, round=3, phase="train", node_ids=(102,)))
    assert model.status()[1, 2] == SAMPLED
    assert model.status().dtype == np.uint8


def test_band_is_the_p10_mean_p90_of_the_clients_that_reported() -> None:
    model = fed(DashboardModel(), small_run())
    band = model.band("train:loss")
    # Round 1 has losses 1 and 2: linear interpolation gives p10 = 1.1 and p90 = 1.9.
    np.testing.assert_allclose(band[0], [1.1, 1.5, 1.9], rtol=1e-6)
    np.testing.assert_allclose(band[1], [3.0, 3.0, 3.0])
    assert np.isnan(band[2]).all()


def test_timing_holds_train_aggregate_evaluate_and_the_slowest_client_per_round() -> None:
    model = fed(DashboardModel(), small_run())
    np.testing.assert_allclose(model.timing()[0], [4.0, 0.5, 1.5, 3.5])  # node 103: 0.5 + 3
    np.testing.assert_allclose(model.timing()[1], [0.0, 0.0, 0.0, 3.5])


def test_progress_counts_the_current_phase_and_eta_follows_the_mean_round() -> None:
    model = fed(DashboardModel(), small_run())
    p = model.progress
    assert (p.round, p.phase, p.sampled, p.done, p.failed) == (2, "train", 2, 2, 1)
    assert model.rounds_done == 1
    # One round done in 104 - 100 = 4 s; two rounds left.
    assert model.eta_s() == 8.0
    model.feed(RunFinished(run_id=RUN, rounds_completed=2, duration_s=4.0, stopped_early=True))
    assert model.finished and model.eta_s() is None


def test_failures_keep_code_round_client_and_the_full_traceback() -> None:
    model = fed(DashboardModel(), small_run())
    first, second = model.client_failures(2)
    assert (first.node_id, first.round, first.code, first.reason) == (103, 1, "CLIENT_APP_RAISED_EXCEPTION", BOOM.reason)
    assert (second.round, second.code) == (2, "TIMEOUT")
    assert model.client_failures(0) == []
    assert model.central == {"accuracy": {1: 0.5}}


def test_unknown_nodes_add_rows_later_rounds_add_columns_and_other_runs_are_ignored() -> None:
    model = fed(DashboardModel(), small_run())
    model.feed(ClientReplied(run_id=RUN, round=5, phase="evaluate", node_id=555, metrics={"acc": 0.25},
                             duration_s=0.1, partition_id=9))
    model.feed(ClientReplied(run_id=RUN + 1, round=1, phase="train", node_id=101, metrics={"loss": 9.0},
                             duration_s=0.1))
    assert model.num_clients == 4 and model.partitions[3] == 9
    assert model.width == 5 and model.last_round == 5
    assert model.grid("evaluate:acc")[3, 4] == 0.25
    assert model.grid("train:loss")[0, 0] == 1.0
    assert model.metrics() == ["train:loss", "train:acc", "evaluate:acc"]


def test_a_new_run_starts_from_an_empty_model() -> None:
    model = fed(DashboardModel(), small_run())
    model.feed(RunStarted(run_id=RUN + 1, num_rounds=1, node_ids=(7,), strategy="FedProx"))
    assert (model.num_clients, model.width, model.failures, model.metrics()) == (1, 1, [], [])


def test_replaying_a_history_rebuilds_the_same_model() -> None:
    events = [*small_run(), RunFinished(run_id=RUN, rounds_completed=2, duration_s=4.0)]
    history = History()
    live = DashboardModel()
    for event in events:
        history(event)
        live.feed(event)
    again = fed(DashboardModel(), list(history.replay()))
    np.testing.assert_array_equal(again.grid("train:loss"), live.grid("train:loss"))
    np.testing.assert_array_equal(again.status(), live.status())
    np.testing.assert_array_equal(again.timing(), live.timing())
    assert again.failures == live.failures and again.central == live.central
    assert again.finished and again.num_rounds == 3


def test_a_refused_reply_turns_its_finished_cell_failed_and_joins_the_failures() -> None:
    refused = Error(ErrorCode.REPLY_REJECTED, "Reply of node 102 refused: array 'w' holds 1 NaN value")
    model = fed(DashboardModel(), small_run()[:5])
    model.feed(ReplyRejected(run_id=RUN, round=1, phase="train", node_id=102, error=refused, partition_id=1))
    assert model.status()[:, 0].tolist() == [FINISHED, FAILED, FAILED]
    p = model.progress
    assert (p.round, p.sampled, p.done, p.failed) == (1, 3, 3, 2)
    (failure,) = model.client_failures(1)
    assert (failure.node_id, failure.round, failure.code, failure.reason) == (
        102, 1, "REPLY_REJECTED", refused.reason
    )
