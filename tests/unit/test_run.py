"""A run that learned nothing fails; one where some rounds aggregated nothing says which."""

from __future__ import annotations

import re

import numpy as np
import pytest

from fedlab import (
    ArrayRecord,
    ClientApp,
    ConfigRecord,
    Context,
    Federation,
    Grid,
    Message,
    MetricRecord,
    RecordDict,
    Result,
    ServerApp,
)
from fedlab.errors import FederationError
from fedlab.events import Event, RunFinished
from fedlab.strategy import FedAvg


def _app(failing_rounds: frozenset[int] | None = None) -> ClientApp:
    """Client p adds p + 1 and weighs 1; in ``failing_rounds`` (None: every round) it raises."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        pid = int(ctx.node_config["partition-id"])  # type: ignore[arg-type]
        rnd = int(msg.content.config_record("config")["server-round"])  # type: ignore[arg-type]
        if failing_rounds is None or rnd in failing_rounds:
            raise ValueError(f"partition {pid} cannot read its data")
        w = msg.content.array_record("arrays")["w"].numpy() + pid + 1
        metrics = MetricRecord({"num-examples": 1})
        return msg.reply(RecordDict({"arrays": ArrayRecord({"w": w}), "metrics": metrics}))

    @app.query()
    def query(msg: Message, ctx: Context) -> Message:
        raise OSError("no data here")

    return app


def _federation(app: ClientApp, events: list[Event], **options: object) -> Federation:
    settings: dict[str, object] = {
        "strategy": FedAvg(fraction_evaluate=0.0),
        "num_clients": 3,
        "initial_arrays": ArrayRecord({"w": np.zeros(1)}),
        "seed": 0,
        "display": "none",
        **options,
    }
    fed = Federation(app, **settings)  # type: ignore[arg-type]
    fed.subscribe(events.append)
    return fed


def test_a_run_in_which_no_round_aggregated_raises_and_names_the_first_failure() -> None:
    events: list[Event] = []
    fed = _federation(_app(), events)

    with pytest.raises(FederationError) as raised:
        fed.run(rounds=3)

    assert fed.history is not None
    first = fed.history.failures()[0]
    message = (
        "No round aggregated anything: rounds 1-3 kept the global arrays unchanged, with 9 "
        f"client failures. First failure: client {first['partition_id']} (node "
        f"{first['node_id']}) in round 1 (train): ValueError: partition "
        f"{first['partition_id']} cannot read its data. Fix what the failures say "
        "(History.failures() lists every one); the model was not trained."
    )
    assert str(raised.value) == message
    (finished,) = [e for e in events if isinstance(e, RunFinished)]
    assert finished.error == f"FederationError: {message}"
    assert fed.history.run["error"] == finished.error


def test_the_console_says_the_run_failed_when_nothing_was_learned(
    capsys: pytest.CaptureFixture[str],
) -> None:
    fed = _federation(_app(), [], display="plain")
    with pytest.raises(FederationError):
        fed.run(rounds=2)
    last = capsys.readouterr().out.splitlines()[-1]
    assert re.fullmatch(
        r"run failed: 2 of 2 rounds in \S+, 6 client failures; rounds 1, 2 aggregated nothing; "
        r"error: FederationError: No round aggregated anything: .*",
        last,
    )


def test_a_run_where_some_rounds_aggregated_nothing_finishes_and_names_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    fed = _federation(_app(failing_rounds=frozenset({2, 3})), [], display="plain")

    result = fed.run(rounds=4)

    # Rounds 1 and 4 add the mean of 1, 2, 3; rounds 2 and 3 keep the arrays.
    np.testing.assert_array_equal(result.arrays["w"].numpy(), [4.0])
    last = capsys.readouterr().out.splitlines()[-1]
    assert re.fullmatch(
        r"run finished: 4 rounds in \S+, 6 client failures; rounds 2, 3 aggregated nothing", last
    )
    assert result.history is not None
    assert result.history.summary().splitlines()[1] == "  rounds 2, 3 aggregated nothing"


def test_a_server_app_that_saved_an_untrained_model_still_fails_the_run() -> None:
    server = ServerApp()
    saved: list[ArrayRecord] = []

    @server.main()
    def main(grid: Grid, context: Context) -> Result:
        result = FedAvg(fraction_evaluate=0.0).start(grid, ArrayRecord({"w": np.zeros(1)}), 2)
        saved.append(result.arrays)
        return result

    fed = Federation(_app(), server_app=server, num_clients=3, seed=0, display="none")

    with pytest.raises(FederationError, match=r"^No round aggregated anything: rounds 1, 2 kept"):
        fed.run(rounds=2)
    assert saved == [ArrayRecord({"w": np.zeros(1)})]


def _query_server(every: bool) -> ServerApp:
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        nodes = list(grid.get_node_ids()) if every else []
        config = RecordDict({"config": ConfigRecord({})})
        grid.send_and_receive([grid.create_message(config, "query", n, "1") for n in nodes])

    return server


def test_a_server_app_whose_every_exchange_failed_fails_and_one_without_any_does_not() -> None:
    server = _query_server(every=True)
    fed = Federation(_app(), server_app=server, num_clients=3, seed=0, display="none")
    with pytest.raises(FederationError) as raised:
        fed.run(rounds=1)
    assert fed.history is not None
    first = fed.history.failures()[0]
    assert str(raised.value) == (
        f"Every client reply failed (3 of 3). First failure: client {first['partition_id']} "
        f"(node {first['node_id']}) in round 1 (query): OSError: no data here. Fix what the "
        "failures say (History.failures() lists every one); no client answered."
    )
    quiet = Federation(_app(), server_app=_query_server(every=False), num_clients=3, display="none")
    assert quiet.run(rounds=1).rounds_completed == 0
