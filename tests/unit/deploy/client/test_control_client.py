"""ControlClient against an in-process SuperLink: runs, nodes, events, stopping."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fedlab.deploy.client.control_client import ControlClient
from fedlab.deploy.client.grpcgrid import GrpcGrid
from fedlab.deploy.superlink import SuperLink
from fedlab.deploy.transport.events_json import event_to_json
from fedlab.errors import DeployError
from fedlab.events import RunFinished, StrategyReport
from fedlab.deploy.security import INSECURE

LOOPBACK = {"fleet_address": "127.0.0.1:0", "serverappio_address": "127.0.0.1:0", "control_address": "127.0.0.1:0"}


@pytest.fixture(scope="module")
def superlink() -> Iterator[SuperLink]:
    with SuperLink(**LOOPBACK, insecure=True) as link:
        yield link


@pytest.fixture
def control(superlink: SuperLink) -> Iterator[ControlClient]:
    with ControlClient(superlink.addresses["control"], security=INSECURE) as client:
        yield client


def test_runs_are_listed_with_their_configs_and_statuses(control: ControlClient) -> None:
    first = control.create_run(b"", {"lr": 0.1}, attached=True)
    second = control.create_run(b"", {"lr": 0.2}, attached=True)
    control.finish_run(first, "completed")
    runs = {r.run_id: r for r in control.list_runs()}
    assert (runs[first].status, runs[first].run_config, runs[first].finished) == ("completed", {"lr": 0.1}, True)
    assert (runs[second].status, runs[second].finished_at, runs[second].error) == ("running", None, None)


def test_a_stop_request_is_seen_by_the_runs_grid_and_the_run_ends_as_stopped(
    control: ControlClient, superlink: SuperLink
) -> None:
    run_id = control.create_run(b"", {}, attached=True)
    grid = GrpcGrid(superlink.addresses["serverappio"], run_id, security=INSECURE)
    try:
        assert not grid.stop_requested
        control.stop_run(run_id)
        assert control.get_run(run_id).status == "stopping"
        grid.get_node_ids()
        assert grid.stop_requested
        assert grid.finish_run("completed").status == "stopped"
    finally:
        grid.close()


def test_following_a_run_yields_its_events_in_order_and_ends_when_it_finishes(
    control: ControlClient, superlink: SuperLink
) -> None:
    run_id = control.create_run(b"", {}, attached=True)
    grid = GrpcGrid(superlink.addresses["serverappio"], run_id, security=INSECURE)
    reports = [StrategyReport(run_id=0, round=r, strategy="S", info={"r": r}) for r in (1, 2, 3)]
    for report in reports:
        grid.events.emit(report)
    grid.finish_run("completed")  # flushes the forwarded events first
    grid.close()
    events = list(control.stream_events(run_id))
    assert [e.round for e in events if isinstance(e, StrategyReport)] == [1, 2, 3]
    assert all(e.run_id == run_id for e in events)  # re-labelled with the SuperLink's run id
    assert isinstance(events[-1], RunFinished) and events[-1].error is None


def test_events_the_superlink_does_not_know_are_skipped_by_the_reader(
    control: ControlClient, superlink: SuperLink
) -> None:
    run_id = control.create_run(b"", {}, attached=True)
    assert superlink.state is not None
    superlink.state.journal.add_events(run_id, ['{"type": "FromTheFuture", "run_id": 1}'])
    superlink.state.journal.add_events(run_id, [event_to_json(StrategyReport(run_id=run_id, round=1, strategy="S", info={}))])
    control.finish_run(run_id, "completed")
    assert [type(e).__name__ for e in control.stream_events(run_id)] == ["StrategyReport", "RunFinished"]


def test_mistakes_come_back_as_deploy_errors_that_say_what_to_do(control: ControlClient) -> None:
    with pytest.raises(DeployError, match="no run 987"):
        control.get_run(987)
    with pytest.raises(DeployError, match="needs a bundle"):
        control.create_run(b"", {}, attached=False)
    with pytest.raises(DeployError, match="finishes as one of"):
        control.finish_run(control.create_run(b"", {}, attached=True), "exploded")


def test_the_serverappio_address_is_found_from_the_control_address(
    control: ControlClient, superlink: SuperLink
) -> None:
    assert control.serverappio_address == superlink.addresses["serverappio"]


def test_waiting_for_more_nodes_than_connect_fails_with_a_clear_error(control: ControlClient) -> None:
    with pytest.raises(DeployError, match="start more SuperNodes"):
        control.wait_for_nodes(1, timeout=0.2)


def test_an_unreachable_superlink_is_reported_after_the_timeout() -> None:
    with ControlClient("127.0.0.1:1", timeout=0.5, security=INSECURE) as client, pytest.raises(DeployError, match="did not answer"):
        client.list_runs()
