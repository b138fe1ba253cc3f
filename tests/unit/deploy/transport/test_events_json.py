"""Events as JSON: every event type survives the trip; nothing else gets in."""

from __future__ import annotations

import json
import math

import pytest

from fedlab.deploy.transport.events_json import event_from_json, event_to_json, event_types
from fedlab.errors import DeployError
from fedlab.events import (
    ClientReplied,
    Evaluated,
    Event,
    ReplyRejected,
    RoundAggregated,
    RoundStarted,
    RunFinished,
    RunStarted,
    StrategyReport,
)
from fedlab.message import Error, ErrorCode

EVENTS: list[Event] = [
    RunStarted(run_id=1, num_rounds=3, node_ids=(5, 7), strategy="FedAvg", config={"lr": 0.1}, timestamp=1.0),
    RoundStarted(run_id=1, round=1, phase="train", node_ids=(7, 5), timestamp=2.0),
    ClientReplied(run_id=1, round=1, phase="train", node_id=7, metrics={"loss": 0.5, "n": [1, 2]},
                  duration_s=0.25, error=Error(ErrorCode.NODE_UNAVAILABLE, "gone"), partition_id=2,
                  timestamp=3.0),  # fmt: skip
    ReplyRejected(run_id=1, round=1, phase="train", node_id=5, error=Error(ErrorCode.REPLY_REJECTED, "NaN"),
                  partition_id=1, timestamp=3.5),  # fmt: skip
    RoundAggregated(run_id=1, round=1, metrics={"loss": 0.5}, num_replies=1, num_failures=1,
                    train_duration_s=1.0, aggregate_duration_s=0.1, timestamp=4.0),  # fmt: skip
    Evaluated(run_id=1, round=1, source="server", metrics={"acc": 0.9}, duration_s=0.5, timestamp=5.0),
    StrategyReport(run_id=1, round=1, strategy="Krum", info={"kept": [7]}, timestamp=6.0),
    RunFinished(run_id=1, rounds_completed=1, duration_s=9.0, stopped_early=True, error="X: y", timestamp=7.0),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_event_type_comes_back_equal(event: Event) -> None:
    assert event_from_json(event_to_json(event)) == event


def test_the_known_event_types_are_exactly_those_of_fedlab_events() -> None:
    assert {type(e).__name__ for e in EVENTS} <= set(event_types())
    assert "Event" not in event_types()


def test_a_diverged_loss_survives_as_nan() -> None:
    event = RoundAggregated(run_id=1, round=1, metrics={"loss": math.nan}, num_replies=1,
                            num_failures=0, train_duration_s=0.0, aggregate_duration_s=0.0)  # fmt: skip
    assert math.isnan(event_from_json(event_to_json(event)).metrics["loss"])  # type: ignore[attr-defined]


def test_unknown_types_and_non_events_are_refused_without_importing_anything() -> None:
    with pytest.raises(DeployError, match="Unknown event type 'os.system'"):
        event_from_json(json.dumps({"type": "os.system", "run_id": 1}))
    with pytest.raises(DeployError, match="Not a JSON event"):
        event_from_json("{not json")
    with pytest.raises(DeployError, match="must be an object"):
        event_from_json("[1, 2]")
    with pytest.raises(DeployError, match="missing fields"):
        event_from_json(json.dumps({"type": "RoundStarted", "run_id": 1}))


def test_fields_from_a_newer_fedlab_are_ignored() -> None:
    body = json.loads(event_to_json(EVENTS[1]))
    body["added_later"] = 42
    assert event_from_json(json.dumps(body)) == EVENTS[1]
