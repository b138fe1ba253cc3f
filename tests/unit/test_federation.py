from __future__ import annotations

import asyncio
import io
import threading

import numpy as np
import pytest

import fedlab.run.driver as driver
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
from fedlab.dashboard import PlainConsole
from fedlab.errors import FederationError, GridError
from fedlab.events import ClientReplied, Event, RoundAggregated, RunFinished, RunStarted
from fedlab.server import Grid, Result
from fedlab.simulation import ThreadBackend
from fedlab.strategy import FedAvg


def make_app(fail_partition: int | None = None) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        pid = int(ctx.node_config["partition-id"])
        if pid == fail_partition:
            raise RuntimeError(f"partition {pid} has no data")
        w = msg.content["arrays"].to_numpy()[0] + (pid + 1)  # type: ignore[union-attr]
        return msg.reply(
            RecordDict({"arrays": ArrayRecord([w]), "metrics": MetricRecord({"num-examples": pid + 1, "loss": 1.0 / (pid + 1)})})
        )

    return app


def make_fed(**kwargs: object) -> Federation:
    options: dict[str, object] = dict(
        strategy=FedAvg(fraction_train=0.5, fraction_evaluate=0.0, min_train_nodes=1),
        num_clients=6,
        initial_arrays=[np.zeros(3, np.float32)],
        seed=7,
        display="none",
    )
    options.update(kwargs)
    app = options.pop("client_app", make_app())
    return Federation(app, **options)  # type: ignore[arg-type]


def server_app_of(rounds_key: str = "num-server-rounds") -> tuple[ServerApp, list[int]]:
    """A ServerApp that runs FedAvg for run_config[rounds_key] rounds and records that number."""
    server, told = ServerApp(), []

    @server.main()
    def main(grid: Grid, context: Context) -> Result:
        told.append(int(context.run_config[rounds_key]))
        strategy = FedAvg(fraction_evaluate=0.0, min_train_nodes=1)
        return strategy.start(grid, ArrayRecord([np.zeros(2)]), num_rounds=told[-1])

    return server, told


def console_lines_of(fed: Federation, rounds: int) -> tuple[list[str], Result]:
    stream = io.StringIO()
    fed.subscribe(PlainConsole(stream))
    result = fed.run(rounds=rounds)
    return stream.getvalue().splitlines(), result


def test_two_seeded_runs_give_identical_arrays_and_history() -> None:
    first, second = make_fed().run(rounds=4), make_fed().run(rounds=4)
    assert first.arrays == second.arrays
    assert first.history is not None and second.history is not None
    assert first.history.to_json(include_timings=False) == second.history.to_json(include_timings=False)
    other = make_fed(seed=8).run(rounds=4)
    assert other.history is not None
    assert other.history.to_json(include_timings=False) != first.history.to_json(include_timings=False)


def test_fedavg_over_a_federation_equals_the_weighted_mean_by_hand() -> None:
    result = make_fed(strategy=FedAvg(fraction_evaluate=0.0), num_clients=3).run(rounds=2)
    # Client p adds p+1 and weighs p+1: each round adds (1*1 + 2*2 + 3*3) / (1+2+3) = 14/6.
    np.testing.assert_allclose(result.arrays.to_numpy()[0], np.full(3, 2 * 14 / 6, np.float32))
    assert result.train_metrics_clientapp[2]["num-examples"] == 6
    assert result.train_metrics_clientapp[2]["loss"] == pytest.approx((1 * 1 + 2 * 0.5 + 3 / 3) / 6)


def test_a_failing_client_is_reported_and_the_round_finishes_with_the_others() -> None:
    fed = make_fed(client_app=make_app(fail_partition=1), strategy=FedAvg(fraction_evaluate=0.0), num_clients=3)
    result = fed.run(rounds=1)
    assert result.history is not None
    failures = result.history.failures()
    assert len(failures) == 1 and failures[0]["partition_id"] == 1
    # Partitions 0 and 2 remain: (1*1 + 3*3) / (1 + 3).
    np.testing.assert_allclose(result.arrays.to_numpy()[0], np.full(3, 10 / 4, np.float32))
    assert result.rounds_completed == 1


def test_a_simulated_run_names_its_clients_by_partition_in_the_console_and_the_history() -> None:
    fed = make_fed(client_app=make_app(fail_partition=1), strategy=FedAvg(fraction_evaluate=0.0), num_clients=3)
    lines, result = console_lines_of(fed, rounds=1)
    assert result.history is not None
    node = result.history.failures()[0]["node_id"]
    assert lines[1] == f"client 1 (node {node}) failed in round 1 (train): RuntimeError: partition 1 has no data"
    assert result.history.client_metric("loss") == {0: {1: 1.0}, 2: {1: 1 / 3}}
    assert set(result.history.client_metric("loss", by="node")) == {
        row["node_id"] for row in result.history.clients if row["error_code"] is None
    }
    table = result.history.to_pandas("clients")
    assert list(table.columns[:4]) == ["round", "phase", "partition_id", "node_id"]
    assert sorted(table["partition_id"]) == [0, 1, 2]


def test_run_works_inside_a_running_event_loop() -> None:
    fed = make_fed()

    async def cell() -> Result:
        return fed.run(rounds=2)  # as in a Jupyter cell: the loop is already running

    result = asyncio.run(cell())
    assert result.rounds_completed == 2
    assert result.arrays == make_fed().run(rounds=2).arrays


def test_run_async_is_awaitable_and_delivers_events_on_the_loop_thread() -> None:
    fed = make_fed()
    threads: set[int] = set()
    fed.subscribe(lambda event: threads.add(threading.get_ident()))

    async def cell() -> tuple[Result, int]:
        return await fed.run_async(rounds=2), threading.get_ident()

    result, loop_thread = asyncio.run(cell())
    assert result.rounds_completed == 2
    assert threads == {loop_thread}


def test_blocking_run_delivers_events_on_the_calling_thread_in_order() -> None:
    fed = make_fed()
    seen: list[Event] = []
    threads: set[int] = set()
    fed.subscribe(seen.append)
    fed.subscribe(lambda event: threads.add(threading.get_ident()))
    fed.run(rounds=2)
    assert threads == {threading.get_ident()}
    assert isinstance(seen[0], RunStarted) and isinstance(seen[-1], RunFinished)
    assert [e.round for e in seen if isinstance(e, RoundAggregated)] == [1, 2]
    assert sum(isinstance(e, ClientReplied) for e in seen) == 2 * 3


def test_start_returns_at_once_and_stop_ends_after_the_current_round() -> None:
    gate = threading.Event()  # holds round 3 until stop() was called, whatever the machine's load
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        if msg.content.config_record("config")["server-round"] == 3:
            assert gate.wait(timeout=30), "the test never released round 3"
        return msg.reply(
            RecordDict({"arrays": msg.content.array_record("arrays"), "metrics": MetricRecord({"num-examples": 1})})
        )

    fed = make_fed(client_app=app)

    async def cell() -> Result:
        task = fed.start(rounds=50)
        assert not task.done()  # the cell got control back at once
        while fed.history is None or fed.history.rounds_completed < 2:
            await asyncio.sleep(0.01)
        fed.stop()
        gate.set()
        return await task

    result = asyncio.run(cell())
    assert result.stopped_early
    assert result.rounds_completed == 3
    assert result.history is not None and result.history.rounds_completed == 3


def test_a_kernel_interrupt_stops_a_blocking_run_after_the_current_round(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()  # round 3 waits until the interrupt has been handled
    app = ClientApp()

    @app.train()
    def train(msg: Message, ctx: Context) -> Message:
        if msg.content.config_record("config")["server-round"] == 3:
            assert gate.wait(timeout=30), "the test never released round 3"
        return msg.reply(
            RecordDict({"arrays": msg.content.array_record("arrays"), "metrics": MetricRecord({"num-examples": 1})})
        )

    original = driver.BlockingInbox.get
    state = {"calls": 0}

    async def interrupted_get(self: driver.BlockingInbox) -> Event | None:
        state["calls"] += 1
        if state["calls"] == 3:  # still in round 1 or 2: round 3 cannot finish before the gate opens
            raise KeyboardInterrupt
        if state["calls"] > 3:
            gate.set()
        return await original(self)

    monkeypatch.setattr(driver.BlockingInbox, "get", interrupted_get)
    fed = make_fed(client_app=app)

    async def cell() -> Result:
        return fed.run(rounds=200)

    result = asyncio.run(cell())
    assert result.stopped_early and result.rounds_completed <= 3


def test_an_error_in_the_server_app_is_raised_and_reported() -> None:
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        raise RuntimeError("server side broke")

    fed = Federation(make_app(), server_app=server, num_clients=2, display="none")
    finished: list[RunFinished] = []
    fed.subscribe(lambda e: finished.append(e) if isinstance(e, RunFinished) else None)
    with pytest.raises(RuntimeError, match="server side broke"):
        fed.run(rounds=1)
    assert finished and finished[0].error == "RuntimeError: server side broke"


def test_a_server_app_drives_a_strategy_and_its_result_is_returned() -> None:
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> Result:
        assert context.run_config == {"lr": 0.5, "num-server-rounds": 2}
        return FedAvg(fraction_evaluate=0.0).start(grid, ArrayRecord([np.zeros(2)]), num_rounds=2)

    result = Federation(make_app(), server_app=server, num_clients=2, config={"lr": 0.5}, display="none").run(rounds=2)
    assert result.rounds_completed == 2
    assert result.history is not None and result.history.rounds_completed == 2


def test_a_server_app_gets_rounds_as_num_server_rounds_and_finishes_without_stopping_early() -> None:
    server, told = server_app_of()
    fed = Federation(make_app(), server_app=server, num_clients=2, display="none")
    lines, result = console_lines_of(fed, rounds=2)
    assert told == [2]
    assert lines[0] == "run started: ServerApp, 2 rounds, 2 nodes"
    assert lines[-1].startswith("run finished: 2 rounds in ")
    assert not result.stopped_early and result.rounds_completed == 2


def test_a_server_app_running_its_own_num_server_rounds_is_not_reported_as_stopped_early() -> None:
    server, told = server_app_of()
    fed = Federation(
        make_app(), server_app=server, num_clients=2, run_config={"num-server-rounds": 2}, display="none"
    )
    lines, result = console_lines_of(fed, rounds=3)
    assert told == [2]  # the project's own setting wins over rounds=
    assert lines[0] == "run started: ServerApp, 2 rounds, 2 nodes"
    assert lines[-1].startswith("run finished: 2 rounds in ")
    assert result.history is not None and result.history.run["stopped_early"] is False
    assert not result.stopped_early


def test_a_server_app_that_ignores_num_server_rounds_is_judged_by_its_own_result() -> None:
    server, told = server_app_of(rounds_key="my-rounds")
    fed = Federation(
        make_app(), server_app=server, num_clients=2, run_config={"my-rounds": 4}, display="none"
    )
    lines, result = console_lines_of(fed, rounds=2)
    assert told == [4]
    assert lines[-1].startswith("run finished: 4 rounds in ")
    assert result.rounds_completed == 4 and not result.stopped_early


def test_misconfigured_federations_fail_early_with_the_fix() -> None:
    app = make_app()
    with pytest.raises(FederationError, match="exactly one of strategy"):
        Federation(app, num_clients=2)
    with pytest.raises(FederationError, match="initial_arrays"):
        Federation(app, FedAvg(), num_clients=2)
    with pytest.raises(FederationError, match="@app.evaluate"):
        Federation(app, FedAvg(fraction_evaluate=0.5), num_clients=2, initial_arrays=[np.zeros(1)])
    with pytest.raises(FederationError, match="'inline', 'threads', 'processes', 'ray'"):
        make_fed(backend="gpu")
    with pytest.raises(FederationError, match="positive int"):
        make_fed(num_clients=0)
    with pytest.raises(FederationError, match="running event loop"):
        make_fed().start()
    with pytest.raises(GridError, match="raise num_clients to at least 9"):
        make_fed(strategy=FedAvg(fraction_evaluate=0.0, min_train_nodes=9)).run(rounds=1)


def test_threads_backend_gives_the_same_result_as_inline() -> None:
    inline = make_fed().run(rounds=3)
    threads = make_fed(backend="threads", max_workers=3).run(rounds=3)
    assert inline.arrays == threads.arrays


def test_a_backend_that_is_neither_a_name_nor_a_backend_is_refused() -> None:
    with pytest.raises(FederationError, match="backend name .* or a backend instance"):
        make_fed(backend=42)  # type: ignore[arg-type]


def test_a_backend_instance_without_cancel_is_refused_naming_what_it_lacks() -> None:
    class OldBackend(ThreadBackend):
        cancel = None  # type: ignore[assignment]

    with pytest.raises(FederationError) as caught:
        make_fed(backend=OldBackend(2))
    assert str(caught.value) == (
        "backend must be a backend name ('inline', 'threads', 'processes', 'ray') or a backend "
        "instance such as fedlab.simulation.ThreadBackend(4), got OldBackend, which lacks cancel "
        "of the fedlab.simulation.Backend protocol."
    )
