"""A Federation's attributes read its frozen RunSpec; assigning one changes later runs only."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fedlab import ArrayRecord, ClientApp, Context, Federation, Message, MetricRecord, RecordDict
from fedlab.events import Event, RoundStarted
from fedlab.run import RunSpec
from fedlab.strategy import FedAvg


def recording_app(seen: list[float]) -> ClientApp:
    """Each reply adds the round's ``config["step"]``; ``seen`` records the steps received."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        step = float(msg.content.config_record("config")["step"])  # type: ignore[arg-type]
        seen.append(step)
        w = msg.content.array_record("arrays").to_numpy()[0] + step
        metrics = MetricRecord({"num-examples": 1})
        return msg.reply(RecordDict({"arrays": ArrayRecord([w]), "metrics": metrics}))

    return app


def make_fed(seen: list[float]) -> Federation:
    return Federation(
        recording_app(seen),
        strategy=FedAvg(fraction_evaluate=0.0),
        num_clients=2,
        initial_arrays=[np.zeros(1)],
        config={"step": 1.0},
        seed=0,
        display="none",
    )


def test_the_attributes_show_the_settled_spec() -> None:
    fed = make_fed([])
    assert isinstance(fed.spec, RunSpec)
    assert (fed.num_clients, fed.run_config, fed.note) == (2, {"step": 1.0}, "")
    assert fed.initial_arrays == ArrayRecord([np.zeros(1)])  # a list became an ArrayRecord


def test_the_spec_cannot_be_changed_in_place() -> None:
    fed = make_fed([])
    with pytest.raises(dataclasses.FrozenInstanceError):
        fed.spec.seed = 1  # type: ignore[misc]


def test_an_assigned_attribute_replaces_that_field_for_the_next_run() -> None:
    seen: list[float] = []
    fed = make_fed(seen)
    before = fed.spec
    fed.config = {"step": 5.0}
    assert fed.spec == dataclasses.replace(before, config={"step": 5.0})
    assert before.config == {"step": 1.0}  # the old spec is untouched
    np.testing.assert_array_equal(fed.run(rounds=1).arrays.to_numpy()[0], [5.0])
    assert seen == [5.0, 5.0]


def test_a_run_in_progress_keeps_the_spec_it_started_with() -> None:
    seen: list[float] = []
    fed = make_fed(seen)

    def change_mid_run(event: Event) -> None:
        if isinstance(event, RoundStarted) and event.round == 1:
            fed.config = {"step": 10.0}

    unsubscribe = fed.subscribe(change_mid_run)
    np.testing.assert_array_equal(fed.run(rounds=3).arrays.to_numpy()[0], [3.0])
    assert seen == [1.0] * 6
    unsubscribe()
    np.testing.assert_array_equal(fed.run(rounds=1).arrays.to_numpy()[0], [10.0])
