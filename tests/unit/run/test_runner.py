"""`Runner`: a federation's runs, counted for their seeded ids, on the grid a factory makes."""

from __future__ import annotations

import numpy as np
import pytest

from fedlab import ArrayRecord, ClientApp, Context, Federation, Message, MetricRecord, RecordDict
from fedlab.errors import FederationError
from fedlab.events import ClientReplied, Event, EventBus
from fedlab.run import Runner
from fedlab.server import Grid
from fedlab.simulation import SimulationGrid
from fedlab.strategy import FedAvg


def make_app() -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        w = msg.content.array_record("arrays").to_numpy()[0] + 1.0
        metrics = MetricRecord({"num-examples": 1})
        return msg.reply(RecordDict({"arrays": ArrayRecord([w]), "metrics": metrics}))

    return app


def make_fed() -> Federation:
    return Federation(
        make_app(),
        strategy=FedAvg(fraction_evaluate=0.0),
        num_clients=2,
        initial_arrays=[np.zeros(1)],
        seed=7,
        display="none",
    )


def run_id(fed: Federation, rounds: int = 1) -> int:
    history = fed.run(rounds=rounds).history
    assert history is not None
    return int(history.run["run_id"])


def test_the_runs_of_a_seeded_federation_get_the_same_ids_in_the_same_order() -> None:
    fed = make_fed()
    first = run_id(fed)
    with pytest.raises(FederationError, match="rounds must be a non-negative int, got -1"):
        fed.run(rounds=-1)  # refused before it starts: not counted
    # The ids drawn from seed 7 for a federation's first and second run, as ever.
    assert [first, run_id(fed)] == [700291879241134005, 6940472155605630314]
    assert run_id(make_fed()) == first  # another federation counts its own runs


def test_a_run_on_the_grid_a_factory_makes_takes_that_grids_run_id_and_events() -> None:
    fed, runner, made = make_fed(), Runner(), []
    replies: list[Event] = []
    runner.subscribe(lambda e: replies.append(e) if isinstance(e, ClientReplied) else None)

    def factory(bus: EventBus) -> Grid:
        made.append(SimulationGrid(fed.client_app, 3, run_id=42, events=bus, seed=1))
        return made[-1]

    result = runner.run(fed.spec, 2, grid_factory=factory)

    assert len(made) == 1 and result.history is not None
    assert result.history.run["run_id"] == 42
    np.testing.assert_array_equal(result.arrays.to_numpy()[0], [2.0])
    assert len(replies) == 6  # three nodes of the factory's grid, two rounds
    assert runner.history is result.history


def test_a_runner_stopped_before_its_first_run_does_nothing_and_has_no_history() -> None:
    runner = Runner()
    runner.stop()
    assert runner.history is None
