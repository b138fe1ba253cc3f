"""PrivacySpent: over the wire as JSON, kept and replayed by History, shown on every round line."""

from __future__ import annotations

import io

from fedlab.dashboard import PlainConsole
from fedlab.deploy.transport.events_json import event_from_json, event_to_json
from fedlab.events import (
    Event,
    PrivacySpent,
    RoundAggregated,
    RoundStarted,
    RunFinished,
    RunStarted,
)
from fedlab.history import History

SPENT = PrivacySpent(
    run_id=7, round=1, epsilon=1.23456, delta=1e-5, accountant="rdp", sampling="fixed-size",
    noise_multiplier=1.1, sampling_probability=0.4, num_sampled=2, population=5, steps=1,
    clipping_norm=0.5, timestamp=3.0,
)  # fmt: skip


def _run() -> list[Event]:
    return [
        RunStarted(run_id=7, num_rounds=1, node_ids=(1, 2), strategy="DifferentialPrivacyServerSideFixedClipping"),
        RoundStarted(run_id=7, round=1, phase="train", node_ids=(1, 2)),
        SPENT,
        RoundAggregated(run_id=7, round=1, metrics={"loss": 0.5}, num_replies=2, num_failures=0,
                        train_duration_s=1.0, aggregate_duration_s=0.25),
        RunFinished(run_id=7, rounds_completed=1, duration_s=2.0),
    ]


def test_privacy_spent_crosses_the_wire_unchanged() -> None:
    assert event_from_json(event_to_json(SPENT)) == SPENT


def test_history_keeps_privacy_spent_through_json_and_replays_it() -> None:
    history = History()
    for event in _run():
        history(event)
    assert history.privacy == [{"round": 1, **{k: getattr(SPENT, k) for k in history.privacy[0] if k != "round"}}]
    assert history.privacy[0]["epsilon"] == 1.23456 and history.privacy[0]["sampling"] == "fixed-size"
    restored = History.from_json(history.to_json())
    assert restored.privacy == history.privacy
    replayed = [e for e in restored.replay() if isinstance(e, PrivacySpent)]
    assert [(e.round, e.epsilon, e.delta) for e in replayed] == [(1, 1.23456, 1e-5)]


def test_the_console_round_line_shows_epsilon_and_delta() -> None:
    stream = io.StringIO()
    console = PlainConsole(stream)
    for event in _run():
        console(event)
    assert stream.getvalue().splitlines()[1] == (
        "round 1/1  clients 2/2 (0 failed)  train loss=0.5000  ε=1.235 (δ=1e-05)  1.25s"
    )


def test_the_notebook_dashboard_draws_epsilon_per_round_beside_the_server_metrics() -> None:
    from fedlab.dashboard._model import DashboardModel

    model = DashboardModel()
    for event in _run():
        model.feed(event)
    assert model.central == {"ε (δ=1e-05)": {1: 1.23456}}
