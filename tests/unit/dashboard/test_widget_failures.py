"""The failures list: every failed or timed-out reply, named by partition id, with its traceback."""

from __future__ import annotations

from fedlab.client.clientapp import exception_error
from fedlab.dashboard import Dashboard
from fedlab.dashboard._model import DashboardModel
from fedlab.events import ClientReplied, ReplyRejected, RoundStarted, RunFinished, RunStarted
from fedlab.format import error_type
from fedlab.message import Error, ErrorCode

RUN = 4
NODES = (8211050864078048428, 55, 901)


def raised(message: str) -> Error:
    try:
        raise KeyError(message)
    except KeyError as exc:
        return exception_error(exc)


def run_events() -> list[object]:
    """3 clients (partitions 0, 7, 2): client 7 raises in round 1 and times out in round 2."""
    boom, late = raised("no column 'age'"), Error(ErrorCode.TIMEOUT, "no reply within 5 s")
    rejected = Error(ErrorCode.REPLY_REJECTED, "NaN in array 0\nsend finite arrays")
    return [
        RunStarted(run_id=RUN, num_rounds=2, node_ids=NODES, strategy="FedAvg"),
        RoundStarted(run_id=RUN, round=1, phase="train", node_ids=NODES, partition_ids=(0, 7, 2)),
        ClientReplied(run_id=RUN, round=1, phase="train", node_id=55, metrics={}, duration_s=0.1,
                      error=boom, partition_id=7),
        ClientReplied(run_id=RUN, round=1, phase="train", node_id=901, metrics={"loss": 1.0},
                      duration_s=0.1, partition_id=2),
        ReplyRejected(run_id=RUN, round=1, phase="train", node_id=901, error=rejected, partition_id=2),
        RoundStarted(run_id=RUN, round=2, phase="train", node_ids=NODES, partition_ids=(0, 7, 2)),
        ClientReplied(run_id=RUN, round=2, phase="train", node_id=55, metrics={}, duration_s=5.0,
                      error=late, partition_id=7),
        RunFinished(run_id=RUN, rounds_completed=2, duration_s=6.0),
    ]


def test_the_failures_list_names_clients_by_partition_and_gives_type_first_line_and_traceback() -> None:
    model = DashboardModel()
    for event in run_events():
        model.feed(event)  # type: ignore[arg-type]
    # Named from the RoundStarted partition ids, before any reply of client 0 arrived.
    assert [model.client_name(row) for row in range(3)] == ["client 0", "client 7", "client 2"]
    rows = [f.row() for f in model.failures]
    assert [(r["name"], r["node_id"], r["round"], r["error_type"], r["first_line"]) for r in rows] == [
        ("client 7", "55", 1, "KeyError", "KeyError: \"no column 'age'\""),
        ("client 2", "901", 1, "REPLY_REJECTED", "NaN in array 0"),
        ("client 7", "55", 2, "TIMEOUT", "no reply within 5 s"),
    ]
    traceback = rows[0]["reason"]
    assert "Traceback (most recent call last)" in traceback and "in raised" in traceback
    assert traceback.rstrip().endswith("KeyError: \"no column 'age'\"")
    assert [f.round for f in model.client_failures(1)] == [1, 2]


def test_the_widget_sends_every_failure_with_its_partition_name_for_the_browser_list() -> None:
    view = Dashboard()
    for event in run_events():
        view(event)  # type: ignore[arg-type]
    view.flush()
    # Node ids travel as text: 8211050864078048428 is no exact JavaScript number.
    assert view.clients == [[str(NODES[0]), 0], ["55", 7], ["901", 2]]
    assert [(f["client"], f["partition"], f["name"], f["code"]) for f in view.failures] == [
        (1, 7, "client 7", "CLIENT_APP_RAISED_EXCEPTION"),
        (2, 2, "client 2", "REPLY_REJECTED"),
        (1, 7, "client 7", "TIMEOUT"),
    ]
    assert view.status == "finished: 2 rounds in 6.00s, 3 client failures"


def test_a_deployment_node_without_partition_is_named_by_node_id() -> None:
    model = DashboardModel()
    model.feed(RunStarted(run_id=1, num_rounds=1, node_ids=(77,), strategy="FedAvg"))
    model.feed(ClientReplied(run_id=1, round=1, phase="train", node_id=77, metrics={}, duration_s=0.1,
                             error=Error(ErrorCode.CLIENT_APP_CRASHED, "")))
    (failure,) = model.failures
    assert (model.client_name(0), failure.name, failure.error_type, failure.first_line) == (
        "node 77", "node 77", "CLIENT_APP_CRASHED", "CLIENT_APP_CRASHED")


def test_error_type_is_the_exception_class_only_for_a_raised_exception() -> None:
    assert error_type(2, "json.decoder.JSONDecodeError: Expecting value\nTraceback ...") == (
        "json.decoder.JSONDecodeError")
    assert error_type(2, "the worker could not read the message: EOF") == "CLIENT_APP_RAISED_EXCEPTION"
    assert error_type(7, "ValueError: looks like one") == "TIMEOUT"


def test_the_png_snapshot_names_the_failed_client_by_partition_even_partition_0() -> None:
    from fedlab.dashboard._static import _summary

    model = DashboardModel()
    model.feed(RunStarted(run_id=1, num_rounds=1, node_ids=(40, 41), strategy="FedAvg"))
    model.feed(ClientReplied(run_id=1, round=1, phase="train", node_id=41, metrics={}, duration_s=0.1,
                             error=raised("x"), partition_id=0))
    assert _summary(model).splitlines()[-2:] == ["1 failed replies", "  client 0 r1: KeyError: 'x'"]
