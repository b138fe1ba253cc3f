"""History: the metrics store a run's events fill in."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from itertools import count
from typing import Any

import numpy as np
import pytest

from fedlab.errors import HistoryError, MissingDependencyError
from fedlab.events import (
    ClientReplied,
    Evaluated,
    Event,
    EventBus,
    ReplyRejected,
    RoundAggregated,
    RoundStarted,
    RunFinished,
    RunStarted,
    StrategyReport,
)
from fedlab.history import History
from fedlab.message import Error, ErrorCode

BOOM = Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, "ValueError: boom\nTraceback (most recent...)")


def run_events(*, scale: float = 1.0, reverse_replies: bool = False) -> list[Event]:
    """Two rounds over nodes 1-3, node 3 failing in round 2; ``scale`` stretches all timings."""
    clock = count()

    def ts() -> float:
        return 1000.0 + next(clock) * scale

    events: list[Event] = [
        RunStarted(
            run_id=7,
            num_rounds=2,
            node_ids=(1, 2, 3),
            strategy="FedAvg",
            config={"lr": 0.5, "blob": b"xyz"},
            timestamp=ts(),
        ),
        Evaluated(
            run_id=7,
            round=0,
            source="server",
            metrics={"loss": 2.5, "accuracy": 0.125},
            duration_s=0.5 * scale,
            timestamp=ts(),
        ),
    ]
    for r in (1, 2):
        events.append(
            RoundStarted(run_id=7, round=r, phase="train", node_ids=(1, 2, 3), timestamp=ts())
        )
        replies = [
            ClientReplied(
                run_id=7,
                round=r,
                phase="train",
                node_id=n,
                partition_id=n - 1,
                metrics={"loss": 1.0 / (r * n), "num-examples": 10 * n},
                duration_s=0.25 * n * scale,
                timestamp=ts(),
            )
            if not (r == 2 and n == 3)
            else ClientReplied(
                run_id=7,
                round=r,
                phase="train",
                node_id=n,
                partition_id=n - 1,
                metrics={},
                duration_s=3.0 * scale,
                error=BOOM,
                timestamp=ts(),
            )
            for n in (1, 2, 3)
        ]
        events += reversed(replies) if reverse_replies else replies
        events.append(
            RoundAggregated(
                run_id=7,
                round=r,
                metrics={"loss": 0.5 / r},
                num_replies=3 if r == 1 else 2,
                num_failures=0 if r == 1 else 1,
                train_duration_s=1.0 * scale,
                aggregate_duration_s=0.25 * scale,
                timestamp=ts(),
            )
        )
        events.append(
            RoundStarted(run_id=7, round=r, phase="evaluate", node_ids=(1, 2), timestamp=ts())
        )
        events += [
            ClientReplied(
                run_id=7,
                round=r,
                phase="evaluate",
                node_id=n,
                partition_id=n - 1,
                metrics={"accuracy": 0.5 + r / 8 + n / 16},
                duration_s=0.125 * scale,
                timestamp=ts(),
            )
            for n in (1, 2)
        ]
        events.append(
            Evaluated(
                run_id=7,
                round=r,
                source="clients",
                metrics={"accuracy": 0.5 + r / 4},
                duration_s=0.75 * scale,
                num_replies=2,
                num_failures=0,
                timestamp=ts(),
            )
        )
        events.append(
            Evaluated(
                run_id=7,
                round=r,
                source="server",
                metrics={"loss": 1.0 / r, "accuracy": r / 4},
                duration_s=0.5 * scale,
                timestamp=ts(),
            )
        )
    events.append(
        StrategyReport(run_id=7, round=2, strategy="FedAvg", info={"kept": (1, 2)}, timestamp=ts())
    )
    events.append(
        RunFinished(run_id=7, rounds_completed=2, duration_s=10.0 * scale, timestamp=ts())
    )
    return events


def recorded(events: list[Event]) -> History:
    history = History()
    for event in events:
        history(event)
    return history


def started_at(events: list[Event], round_: int) -> float:
    return next(
        e.timestamp
        for e in events
        if isinstance(e, RoundStarted) and e.round == round_ and e.phase == "train"
    )


def test_history_keeps_one_row_per_round_with_nested_metrics_counts_and_timings() -> None:
    events = run_events()
    rounds = recorded(events).rounds
    assert [row["round"] for row in rounds] == [0, 1, 2]
    assert rounds[0] == {
        "round": 0,
        "train": {},
        "evaluate": {},
        "server": {"loss": 2.5, "accuracy": 0.125},
        "train_sampled": 0,
        "train_replies": 0,
        "train_failures": 0,
        "evaluate_sampled": 0,
        "evaluate_replies": 0,
        "evaluate_failures": 0,
        "aggregated": None,
        "reason": "",
        "started_at": None,
        "train_duration_s": None,
        "aggregate_duration_s": None,
        "evaluate_duration_s": None,
        "server_duration_s": 0.5,
    }
    assert rounds[2] == {
        "round": 2,
        "train": {"loss": 0.25},
        "evaluate": {"accuracy": 1.0},
        "server": {"loss": 0.5, "accuracy": 0.5},
        "train_sampled": 3,
        "train_replies": 2,
        "train_failures": 1,
        "evaluate_sampled": 2,
        "evaluate_replies": 2,
        "evaluate_failures": 0,
        "aggregated": True,
        "reason": "",
        "started_at": started_at(events, 2),
        "train_duration_s": 1.0,
        "aggregate_duration_s": 0.25,
        "evaluate_duration_s": 0.75,
        "server_duration_s": 0.5,
    }


def test_history_keeps_one_row_per_client_reply_with_its_error() -> None:
    events = run_events()
    history = recorded(events)
    clients = history.clients
    assert len(clients) == 10
    assert clients[0] == {
        "round": 1,
        "phase": "train",
        "node_id": 1,
        "partition_id": 0,
        "metrics": {"loss": 1.0, "num-examples": 10},
        "duration_s": 0.25,
        "timestamp": events[3].timestamp,
        "error_code": None,
        "error_reason": None,
    }
    failed = [{k: v for k, v in row.items() if k != "timestamp"} for row in history.failures()]
    assert failed == [
        {
            "round": 2,
            "phase": "train",
            "node_id": 3,
            "partition_id": 2,
            "metrics": {},
            "duration_s": 3.0,
            "error_code": 2,
            "error_reason": BOOM.reason,
        }
    ]


def test_history_metric_maps_rounds_to_values_for_each_source() -> None:
    history = recorded(run_events())
    assert history.metric("loss") == {1: 0.5, 2: 0.25}
    assert history.metric("accuracy", source="evaluate") == {1: 0.75, 2: 1.0}
    assert history.metric("accuracy", source="server") == {0: 0.125, 1: 0.25, 2: 0.5}
    assert history.metric("f1") == {}
    with pytest.raises(HistoryError, match="source='clients'"):
        history.metric("loss", source="clients")  # type: ignore[arg-type]


def test_history_client_metric_maps_partitions_to_rounds_and_skips_failures() -> None:
    history = recorded(run_events())
    assert history.client_metric("loss") == {
        0: {1: 1.0, 2: 0.5},
        1: {1: 0.5, 2: 0.25},
        2: {1: 1 / 3},
    }
    assert history.client_metric("accuracy", phase="evaluate", by="partition") == {
        0: {1: 0.6875, 2: 0.8125},
        1: {1: 0.75, 2: 0.875},
    }


def test_history_client_metric_still_maps_node_ids_when_asked_by_node() -> None:
    history = recorded(run_events())
    assert history.client_metric("loss", by="node") == {
        1: {1: 1.0, 2: 0.5},
        2: {1: 0.5, 2: 0.25},
        3: {1: 1 / 3},
    }


def long_id_replies(partitions: tuple[int | None, ...]) -> list[Event]:
    nodes = (8211050864078048428, 373402508605428821, 3553260803050964941)
    return [
        ClientReplied(
            run_id=1,
            round=1,
            phase="train",
            node_id=node,
            partition_id=partition,
            metrics={"loss": 0.5 + index},
            duration_s=0.0,
        )
        for index, (node, partition) in enumerate(zip(nodes, partitions, strict=True))
    ]


def test_history_client_metric_names_simulated_clients_by_partition_not_by_their_long_node_ids() -> None:
    history = recorded(long_id_replies((0, 1, 2)))
    assert history.client_metric("loss") == {0: {1: 0.5}, 1: {1: 1.5}, 2: {1: 2.5}}
    assert history.client_metric("loss", by="node") == {
        8211050864078048428: {1: 0.5},
        373402508605428821: {1: 1.5},
        3553260803050964941: {1: 2.5},
    }


def test_history_client_metric_of_nodes_without_partitions_is_by_node_and_refuses_by_partition() -> None:
    history = recorded(long_id_replies((None, None, 2)))
    assert list(history.client_metric("loss")) == [
        8211050864078048428, 373402508605428821, 3553260803050964941
    ]
    with pytest.raises(HistoryError) as info:
        history.client_metric("loss", by="partition")
    assert str(info.value) == (
        "History.client_metric(by='partition'): some replies have no partition id (nodes of a "
        "deployment); name the clients by node id with by='node'."
    )
    with pytest.raises(HistoryError, match="by='client'; use 'partition', 'node' or leave it out"):
        history.client_metric("loss", by="client")  # type: ignore[arg-type]


def test_history_reports_run_facts_strategy_reports_and_rounds_completed() -> None:
    events = run_events()
    history = recorded(events[:-1])
    assert history.run_id == 7
    assert history.rounds_completed == 2  # counted from the aggregations while running
    assert history.strategy_reports == [
        {"round": 2, "strategy": "FedAvg", "info": {"kept": [1, 2]}}
    ]
    history(RunFinished(run_id=7, rounds_completed=1, duration_s=3.0, stopped_early=True))
    assert history.rounds_completed == 1  # the run's own count wins once it ended
    run = history.run
    assert (run["strategy"], run["num_rounds"], run["node_ids"]) == ("FedAvg", 2, [1, 2, 3])
    assert run["config"] == {"lr": 0.5, "blob": "<3 bytes>"}  # bytes cannot go to JSON
    assert (run["finished"], run["stopped_early"], run["error"]) == (True, True, None)


def test_history_ignores_events_of_another_run_on_a_shared_bus() -> None:
    history = recorded(run_events())
    before = history.to_json()
    history(
        RoundAggregated(
            run_id=8,
            round=1,
            metrics={"loss": 9.0},
            num_replies=1,
            num_failures=0,
            train_duration_s=1.0,
            aggregate_duration_s=0.0,
        )
    )
    assert history.to_json() == before


def test_history_attach_subscribes_and_returns_unsubscribe() -> None:
    bus, history = EventBus(), History()
    detach = history.attach(bus)
    bus.emit(RunStarted(run_id=1, num_rounds=1, node_ids=(1,), strategy="FedAvg"))
    detach()
    bus.emit(RunFinished(run_id=1, rounds_completed=1, duration_s=1.0))
    assert history.run["finished"] is False


def test_history_accessors_return_copies() -> None:
    history = recorded(run_events())
    history.rounds[1]["train"]["loss"] = 99.0
    history.clients[0]["metrics"].clear()
    assert history.metric("loss")[1] == 0.5
    assert history.clients[0]["metrics"] == {"loss": 1.0, "num-examples": 10}


def test_history_stores_numpy_scalars_and_tuples_as_plain_python() -> None:
    history = History()
    history(
        ClientReplied(
            run_id=1,
            round=1,
            phase="train",
            node_id=1,
            metrics={"loss": np.float32(0.5), "hist": (1, 2)},
            duration_s=0.1,
        )
    )
    metrics = history.clients[0]["metrics"]
    assert metrics == {"loss": 0.5, "hist": [1, 2]}
    assert type(metrics["loss"]) is float


def test_history_keeps_the_runs_note_through_json_and_reads_older_json_without_one() -> None:
    note = "federated evaluation skipped: the ClientApp has no @app.evaluate()"
    history = recorded([RunStarted(run_id=3, num_rounds=1, node_ids=(1,), strategy="FedAvg", note=note)])
    assert history.run["note"] == note
    assert History.from_json(history.to_json()).run["note"] == note
    older = json.loads(history.to_json())
    del older["run"]["note"]
    assert History.from_json(json.dumps(older)).run["note"] == ""


def test_history_from_json_restores_to_json_exactly() -> None:
    history = recorded(run_events())
    text = history.to_json()
    restored = History.from_json(text)
    assert restored == history
    assert restored.to_json() == text
    assert restored.rounds == history.rounds
    assert restored.clients == history.clients
    assert restored.run == history.run
    assert restored.strategy_reports == history.strategy_reports


def test_history_json_keeps_nan_and_infinity() -> None:
    history = History()
    history(
        RoundAggregated(
            run_id=1,
            round=1,
            metrics={"loss": math.nan, "grad": -math.inf},
            num_replies=1,
            num_failures=0,
            train_duration_s=1.0,
            aggregate_duration_s=0.0,
        )
    )
    restored = History.from_json(history.to_json())
    assert math.isnan(restored.metric("loss")[1])
    assert restored.metric("grad") == {1: -math.inf}
    assert restored == history


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_history_json_without_timings_leaves_out_every_duration_and_timestamp() -> None:
    text = recorded(run_events()).to_json(include_timings=False)
    keys = _keys(json.loads(text))
    assert not {k for k in keys if k.endswith(("_s", "_at")) or k == "timestamp"}
    assert {"train", "evaluate", "server", "metrics", "error_code", "rounds"} <= keys


def test_history_json_without_timings_is_identical_for_runs_that_differ_only_in_time() -> None:
    fast = recorded(run_events(scale=1.0))
    slow = recorded(run_events(scale=3.5, reverse_replies=True))
    assert fast != slow
    assert fast.to_json(include_timings=False) == slow.to_json(include_timings=False)
    restored = History.from_json(slow.to_json(include_timings=False))
    assert restored == History.from_json(fast.to_json(include_timings=False))
    assert restored.rounds[1]["train_duration_s"] is None
    assert restored.clients[0]["timestamp"] is None


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("not json", "not JSON"),
        ('{"rounds": []}', "format"),
        ('{"format": "fedlab.history", "version": 1, "run": {}}', "damaged"),
    ],
)
def test_history_from_json_rejects_text_it_did_not_write(text: str, match: str) -> None:
    with pytest.raises(HistoryError, match=match):
        History.from_json(text)


def test_history_to_pandas_gives_one_row_per_round_with_flattened_metrics() -> None:
    events = run_events()
    frame = recorded(events).to_pandas()
    assert list(frame.columns) == [
        "round",
        "train.loss",
        "evaluate.accuracy",
        "server.loss",
        "server.accuracy",
        "train_sampled",
        "train_replies",
        "train_failures",
        "evaluate_sampled",
        "evaluate_replies",
        "evaluate_failures",
        "aggregated",
        "reason",
        "started_at",
        "train_duration_s",
        "aggregate_duration_s",
        "evaluate_duration_s",
        "server_duration_s",
    ]
    assert frame["round"].tolist() == [0, 1, 2]
    assert frame["server.accuracy"].tolist() == [0.125, 0.25, 0.5]
    assert math.isnan(frame["train.loss"][0])
    assert frame["train.loss"][1:].tolist() == [0.5, 0.25]
    assert frame["train_failures"].tolist() == [0, 0, 1]
    assert frame["started_at"][2] == started_at(events, 2)


def test_history_to_pandas_gives_one_row_per_client_reply() -> None:
    frame = recorded(run_events()).to_pandas("clients")
    assert list(frame.columns) == [
        "round",
        "phase",
        "partition_id",
        "node_id",
        "metric.loss",
        "metric.num-examples",
        "metric.accuracy",
        "duration_s",
        "timestamp",
        "error_code",
        "error_reason",
    ]
    assert len(frame) == 10
    failed = frame[frame["error_code"].notna()]
    assert failed[["round", "phase", "partition_id", "node_id"]].values.tolist() == [[2, "train", 2, 3]]
    assert math.isnan(failed["metric.loss"].iloc[0])
    assert frame["metric.accuracy"].dropna().tolist() == [0.6875, 0.75, 0.8125, 0.875]


def test_history_to_pandas_of_an_empty_history_has_the_columns_and_no_rows() -> None:
    frame = History().to_pandas()
    assert len(frame) == 0
    assert list(frame.columns)[:2] == ["round", "train_sampled"]


def test_history_to_pandas_without_pandas_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` fail
    with pytest.raises(MissingDependencyError, match=r'pip install "fedlab-sdk\[datasets\]"'):
        History().to_pandas()


def test_importing_history_does_not_import_pandas() -> None:
    code = "import sys, fedlab.history; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_importing_history_loads_no_display() -> None:
    code = (
        "import sys, fedlab.history\n"
        "print(sorted(m for m in sys.modules if m.startswith(('fedlab.dashboard', 'rich', 'matplotlib'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_history_replay_gives_events_that_rebuild_an_equal_history() -> None:
    history = recorded(run_events())
    again = recorded(list(history.replay()))
    # Replayed events carry what the rows hold: the same rows, without the strategy's
    # reports (not replayed) and the train phase's start times (not kept per phase).
    assert again.clients == history.clients
    assert again.run == history.run
    assert [{**r, "started_at": None} for r in again.rounds] == [
        {**r, "started_at": None} for r in history.rounds
    ]
    assert history.strategy_reports and again.strategy_reports == []
    assert list(History().replay()) == []


def test_history_records_every_event_emitted_from_eight_threads() -> None:
    bus, history = EventBus(), History()
    history.attach(bus)
    bus.emit(RunStarted(run_id=1, num_rounds=1, node_ids=tuple(range(8)), strategy="FedAvg"))
    barrier = threading.Barrier(8)

    def worker(node: int) -> None:
        barrier.wait()
        for r in range(250):
            bus.emit(
                ClientReplied(
                    run_id=1,
                    round=r,
                    phase="train",
                    node_id=node,
                    metrics={"loss": float(r)},
                    duration_s=0.0,
                )
            )
            if node == 0:
                bus.emit(
                    RoundAggregated(
                        run_id=1,
                        round=r,
                        metrics={},
                        num_replies=8,
                        num_failures=0,
                        train_duration_s=0.0,
                        aggregate_duration_s=0.0,
                    )
                )

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert bus.subscriber_errors == []
    assert len(history.clients) == 2000
    assert len(history.rounds) == 250
    assert {node: len(rounds) for node, rounds in history.client_metric("loss").items()} == {
        n: 250 for n in range(8)
    }


def test_history_summary_and_repr_read_well() -> None:
    history = recorded(run_events())
    assert history.summary() == (
        "run 7 (FedAvg): 2/2 rounds in 10.0s, 1 client failure\n"
        "  last train loss=0.2500\n"
        "  last evaluate accuracy=1.0000\n"
        "  last server loss=0.5000 accuracy=0.5000"
    )
    assert repr(history) == "History(run_id=7, rounds_completed=2, rounds=3, client_rows=10)"
    failed = recorded(
        [
            *run_events()[:-1],
            RunFinished(
                run_id=7,
                rounds_completed=2,
                duration_s=1.0,
                error="RuntimeError: disk full\nTraceback ...",
            ),
        ]
    )
    assert failed.summary().splitlines()[1] == "  error: RuntimeError: disk full"
    assert History().summary() == "run None: 0 rounds, 0 client failures"


REFUSED = Error(ErrorCode.REPLY_REJECTED, "Reply of node 2 refused: array 'w' holds 1 NaN value")


def test_a_refused_reply_marks_its_own_row_failed_without_adding_one() -> None:
    events: list[Event] = [
        RunStarted(run_id=3, num_rounds=2, node_ids=(1, 2), strategy="FedAvg"),
        RoundStarted(run_id=3, round=1, phase="train", node_ids=(1, 2)),
        *(
            ClientReplied(run_id=3, round=1, phase="train", node_id=n, metrics={"loss": 0.5},
                          duration_s=1.0, partition_id=n - 1)
            for n in (1, 2)
        ),
        ReplyRejected(run_id=3, round=1, phase="train", node_id=2, error=REFUSED, partition_id=1),
        RoundAggregated(run_id=3, round=1, metrics={"loss": 0.5}, num_replies=1, num_failures=1,
                        train_duration_s=1.0, aggregate_duration_s=0.0),
        RoundStarted(run_id=3, round=2, phase="train", node_ids=(1, 2)),
        *(
            ClientReplied(run_id=3, round=2, phase="train", node_id=n, metrics={},
                          duration_s=1.0, error=BOOM)
            for n in (1, 2)
        ),
        RoundAggregated(run_id=3, round=2, metrics={}, num_replies=0, num_failures=2,
                        train_duration_s=1.0, aggregate_duration_s=0.0, aggregated=False,
                        reason="0 of 2 replies succeeded"),
        RunFinished(run_id=3, rounds_completed=2, duration_s=2.0),
    ]
    history = recorded(events)
    assert len(history.clients) == 4
    (refused,) = [row for row in history.failures() if row["round"] == 1]
    assert (refused["node_id"], refused["error_code"], refused["error_reason"]) == (
        2, int(ErrorCode.REPLY_REJECTED), REFUSED.reason
    )
    assert refused["metrics"] == {"loss": 0.5}  # what the client reported is kept
    assert history.summary().splitlines()[:2] == [
        "run 3 (FedAvg): 2/2 rounds in 2.00s, 3 client failures",
        "  round 2 aggregated nothing",
    ]
